import { findSampler, findScheduleType } from "../schedulers/index.js";
import type { ResolvedParams } from "./params.js";

/**
 * The infotext fields of A1111's variation seeds and hires fix, named, valued and ordered as its create_infotext
 * and StableDiffusionProcessingTxt2Img.init write them; a field it leaves out (a default) is left out here too.
 */

/** "Variation seed" (the image's own) and its strength when there is a variation; "Seed resize from" when resized. */
export function variationInfotext(p: ResolvedParams, subseed: bigint | undefined): Record<string, string> {
  return {
    ...(subseed !== undefined && p.subseedStrength
      ? { "Variation seed": String(subseed), "Variation seed strength": String(p.subseedStrength) }
      : {}),
    ...(p.seedResizeFrom ? { "Seed resize from": `${p.seedResizeFrom.width}x${p.seedResizeFrom.height}` } : {}),
  };
}

/** The hires fix's fields ("Denoising strength" is a typed infotext field, written by imageInfotext). */
export function hiresInfotext(p: ResolvedParams): Record<string, string> {
  const h = p.hires;
  if (!h) return {};
  const label = (name: string) => findSampler(name)?.label ?? name;
  const out: Record<string, string> = {};
  if (label(h.sampler) !== label(p.sampler)) out["Hires sampler"] = label(h.sampler);
  if (h.prompt !== p.prompt) out["Hires prompt"] = h.prompt;
  if (h.negativePrompt !== p.negativePrompt) out["Hires negative prompt"] = h.negativePrompt;
  if (h.schedule !== p.schedule) out["Hires schedule type"] = findScheduleType(h.schedule)?.label ?? h.schedule;
  if (h.scale !== undefined) out["Hires upscale"] = String(h.scale);
  else out["Hires resize"] = `${h.resizeX}x${h.resizeY}`;
  if (h.steps) out["Hires steps"] = String(h.steps);
  out["Hires upscaler"] = h.upscaler;
  return out;
}
