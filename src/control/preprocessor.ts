import type { RgbImage } from "../image/codec.js";

/**
 * A control-image preprocessor: a pure function from the user's image to the map a ControlNet was trained on
 * (white strokes on black for scribble, edges for canny, the image itself for "none"). Named and parameterised as
 * AUTOMATIC1111's ControlNet extension does (module name, threshold A/B with their labels and ranges), so its clients'
 * requests and infotexts mean the same here.
 */
export interface Preprocessor {
  /** The module name requests use ("none", "scribble", "canny", ...). */
  readonly name: string;
  /** Other names A1111's extension accepts for the same operation. */
  readonly aliases?: readonly string[];
  /** The sliders the module reads (threshold_a, threshold_b), with A1111's labels, bounds and defaults. */
  readonly thresholdA?: ThresholdSpec;
  readonly thresholdB?: ThresholdSpec;
  run(image: RgbImage, params: { thresholdA: number; thresholdB: number }): RgbImage;
}

export interface ThresholdSpec {
  readonly label: string;
  readonly min: number;
  readonly max: number;
  readonly default: number;
}
