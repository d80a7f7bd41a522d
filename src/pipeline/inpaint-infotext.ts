import type { InpaintOptions } from "./params.js";

/**
 * The infotext fields A1111 writes for an inpainting: "Mask blur" (when both axes agree), "Mask mode" when
 * inverted, "Masked content" unless it is the original, "Inpaint area" and "Masked area padding" when only the
 * masked region was worked on.
 */
export function inpaintInfotext(o: InpaintOptions, onlyMasked: boolean): Record<string, string> {
  return {
    ...(o.blurX === o.blurY && o.blurX > 0 ? { "Mask blur": String(o.blurX) } : {}),
    ...(o.invert ? { "Mask mode": "Inpaint not masked" } : {}),
    ...(o.fill !== "original" ? { "Masked content": o.fill } : {}),
    ...(onlyMasked ? { "Inpaint area": "Only masked", "Masked area padding": String(o.fullResPadding) } : {}),
  };
}
