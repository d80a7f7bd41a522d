import {
  decodeImage,
  decodeMask,
  resizeImage,
  resizeMask,
  type ImageSource,
  type Mask,
  type RgbImage,
} from "../image/codec.js";
import { cropImage, cropMask, expandCropRegion, maskCropRegion, type CropRegion } from "../image/crop-region.js";
import { blurMask } from "../image/mask-blur.js";
import { maskedFill } from "../image/masked-fill.js";
import type { InpaintOptions } from "./params.js";

/**
 * What an inpainting works on, prepared as A1111 prepares it: the mask inverted and blurred at its own size; for
 * the whole picture, image and mask stretched to the generation size; for "only masked", the masked region's
 * bounding box (plus padding, grown to the generation's aspect ratio) cut out of the init image at its own size and
 * stretched to the generation size. "fill" paints the masked region with its surroundings before encoding.
 */
export interface InpaintArea {
  /** The image the generation starts from, at the generation size. */
  image: RgbImage;
  /** The mask at the generation size (1 = repaint): what the latents are masked with. */
  mask: Mask;
  /** The region worked on, for "only masked"; undefined for the whole picture (or a mask with nothing to repaint). */
  region?: CropRegion;
  /**
   * The output from a generated image: the init image with the generated pixels where the mask repaints, blended
   * along its blur, and exactly the init image's pixels where it keeps (A1111's overlay).
   */
  paste(generated: RgbImage): Promise<RgbImage>;
}

export async function prepareInpaintArea(
  init: ImageSource,
  maskSource: ImageSource,
  o: InpaintOptions,
  width: number,
  height: number,
  names: { init?: string; mask?: string } = {},
): Promise<InpaintArea> {
  let mask = await decodeMask(maskSource, { name: names.mask });
  if (o.invert) mask = { ...mask, data: mask.data.map((v) => 1 - v) };
  mask = blurMask(mask, o.blurX, o.blurY);
  if (o.fullResPadding !== undefined) {
    const original = await decodeImage(init, { name: names.init });
    const full = await resizeMask(mask, original.width, original.height);
    const tight = maskCropRegion(full, o.fullResPadding);
    // A mask with nothing to repaint has no region: the whole picture is worked on, as A1111 falls back to.
    if (tight) {
      const region = expandCropRegion(tight, width, height, original.width, original.height);
      const image = await resizeImage(cropImage(original, region), width, height);
      const workMask = await resizeMask(cropMask(full, region), width, height);
      return {
        image: o.fill === "fill" ? maskedFill(image, workMask) : image,
        mask: workMask,
        region,
        paste: async (generated) => {
          const w = region.x2 - region.x1;
          const placed = pasteInto(original, await resizeImage(generated, w, region.y2 - region.y1), region);
          return overlay(placed, original, full);
        },
      };
    }
  }
  const image = await decodeImage(init, { name: names.init, width, height });
  const workMask = await resizeMask(mask, width, height);
  // A1111 doubles the blurred mask for the overlay of the whole picture: the generated pixels show fully from
  // half-way up the blur's ramp, and the init image's only where the mask is 0.
  const shown: Mask = { ...workMask, data: workMask.data.map((v) => Math.min(1, 2 * v)) };
  return {
    image: o.fill === "fill" ? maskedFill(image, workMask) : image,
    mask: workMask,
    paste: async (generated) => overlay(generated, image, shown),
  };
}

/** A copy of `base` with `part` in `region`. */
function pasteInto(base: RgbImage, part: RgbImage, region: CropRegion): RgbImage {
  const data = base.data.slice();
  for (let y = 0; y < part.height; y++)
    data.set(
      part.data.subarray(y * part.width * 3, (y + 1) * part.width * 3),
      ((region.y1 + y) * base.width + region.x1) * 3,
    );
  return { width: base.width, height: base.height, data };
}

/**
 * The original laid over the generated image with opacity 1 - shown (8-bit, as A1111's alpha composite): where
 * `shown` is 0 the original's pixels come out unchanged.
 */
export function overlay(generated: RgbImage, original: RgbImage, shown: Mask): RgbImage {
  const data = new Uint8Array(generated.data.length);
  for (let i = 0; i < shown.data.length; i++) {
    const alpha = 255 - Math.round(shown.data[i]! * 255);
    for (let c = 0; c < 3; c++) {
      const j = i * 3 + c;
      data[j] = Math.round((original.data[j]! * alpha + generated.data[j]! * (255 - alpha)) / 255);
    }
  }
  return { width: generated.width, height: generated.height, data };
}
