import type { RgbImage } from "../../image/codec.js";
import { DWT_DCT_MIN_PIXELS, embedDwtDct, SD1_WATERMARK_BITS } from "./dwt-dct.js";
import { DIFFUSE_GENERATOR_ID, jobIdFromString, type RobustWatermark } from "./robust.js";

/** The smallest side the robust watermark can carry its payload in. */
export const ROBUST_MIN_SIDE = 128;

/**
 * The invisible watermarks every image diffuse makes carries (generated or upscaled): the robust mark with the job
 * in its payload, and the original SD release's dwtDct mark so that existing detectors recognise it. An image too
 * small for the robust mark is returned as it is, with the infotext note that says so.
 */
export function markImage(robust: RobustWatermark, image: RgbImage, jobId: string): { image: RgbImage; note?: string } {
  if (Math.min(image.width, image.height) < ROBUST_MIN_SIDE)
    return { image, note: `none (image smaller than ${ROBUST_MIN_SIDE}x${ROBUST_MIN_SIDE})` };
  let marked = robust.embed(image, { generator: DIFFUSE_GENERATOR_ID, job: jobIdFromString(jobId) });
  if (image.width * image.height >= DWT_DCT_MIN_PIXELS) marked = embedDwtDct(marked, SD1_WATERMARK_BITS);
  return { image: marked };
}
