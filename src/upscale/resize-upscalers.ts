import { resizeImage } from "../image/codec.js";
import { checkUpscaleSize, type Upscaler } from "./upscaler.js";

/**
 * A1111's three upscalers without a model: `Lanczos` and `Nearest` resize with that filter; `None` leaves the
 * upscaling to the final Lanczos resize A1111 applies to every upscaler's result, so it resizes with Lanczos too
 * (the extras routes skip it altogether, as A1111 does).
 */
export function resizeUpscaler(name: "None" | "Lanczos" | "Nearest"): Upscaler {
  return {
    name,
    async upscale(rgb, width, height, outWidth, outHeight, signal) {
      signal?.throwIfAborted();
      checkUpscaleSize(outWidth, outHeight, "the upscaled size");
      const kernel = name === "Nearest" ? "nearest" : "lanczos3";
      return (await resizeImage({ width, height, data: rgb }, outWidth, outHeight, kernel)).data;
    },
    async close() {},
  };
}

export const RESIZE_UPSCALERS = ["None", "Lanczos", "Nearest"] as const;
