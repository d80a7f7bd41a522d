import { findPreprocessor } from "../control/preprocessors.js";
import { decodeImage, type RgbImage } from "../image/codec.js";
import type { ResolvedControlUnit } from "./params.js";

/**
 * The control map of one ControlNet unit at the generation size: the image brought to width x height as the unit's
 * resize mode says (A1111's ControlNet extension: "Just Resize" stretches, "Crop and Resize" covers and crops the
 * centre, "Resize and Fill" fits inside), then its preprocessor; a fitted map is centred on black (no control) to the
 * full size, so padding never reads as strokes or edges.
 */
export async function controlMap(
  unit: ResolvedControlUnit,
  width: number,
  height: number,
  index = 0,
): Promise<RgbImage> {
  const fit = unit.resizeMode === "Just Resize" ? "fill" : unit.resizeMode === "Crop and Resize" ? "cover" : "inside";
  const image = await decodeImage(unit.image, {
    name: typeof unit.image === "string" ? undefined : `the control image of ControlNet unit ${index}`,
    width,
    height,
    fit,
  });
  const pre = findPreprocessor(unit.module);
  const map = pre.run(image, {
    thresholdA: unit.thresholdA ?? pre.thresholdA?.default ?? 0,
    thresholdB: unit.thresholdB ?? pre.thresholdB?.default ?? 0,
  });
  return map.width === width && map.height === height ? map : padCentred(map, width, height);
}

function padCentred(image: RgbImage, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const left = Math.floor((width - image.width) / 2),
    top = Math.floor((height - image.height) / 2);
  for (let y = 0; y < image.height; y++) {
    data.set(image.data.subarray(y * image.width * 3, (y + 1) * image.width * 3), ((top + y) * width + left) * 3);
  }
  return { width, height, data };
}
