import { luminance, maskImage } from "./grey.js";
import type { Preprocessor } from "./preprocessor.js";

/**
 * A user's sketch to the map scribble ControlNets were trained on (white strokes on black): pixels darker than the
 * ink threshold are ink. The paper is whichever of ink and not-ink covers most of the image, so dark strokes on light
 * paper are inverted and a map that is already light strokes on black keeps its polarity.
 */
export const SCRIBBLE: Preprocessor = {
  name: "scribble",
  thresholdA: { label: "Ink threshold", min: 1, max: 255, default: 128 },
  run(image, { thresholdA }) {
    const lum = luminance(image);
    const ink = new Uint8Array(lum.length);
    let inked = 0;
    for (let i = 0; i < lum.length; i++) if (lum[i]! < thresholdA) inked += ink[i] = 1;
    // More ink than paper: the "paper" is the dark part, so the strokes are the light pixels.
    if (inked > lum.length / 2) for (let i = 0; i < ink.length; i++) ink[i] = 1 - ink[i]!;
    return maskImage(ink, image.width, image.height);
  },
};
