import { InputError } from "../errors.js";
import type { Infotext } from "../image/infotext.js";
import type { GenerateParams, HiresParams } from "./params.js";
import { samplerKnobsFromInfotext } from "./sampler-knobs.js";

/**
 * The request that makes an image again from its infotext (A1111's "send to txt2img" after png-info): the typed
 * fields, the schedule type, the variation seed, the sampler knobs (Eta, Sigma noise, ENSD, ...) and the hires fix,
 * as the image's generation had them. Fields
 * the infotext does not hold (the model, LoRA files, ControlNet images) are the caller's to supply.
 */
export function requestFromInfotext(info: Infotext): GenerateParams {
  const extra = info.extra;
  const number = (key: string): number | undefined => {
    const raw = extra[key];
    if (raw === undefined) return undefined;
    const n = raw.trim() === "" ? NaN : Number(raw);
    if (!Number.isFinite(n)) throw new InputError(`infotext ${key} "${raw}" is not a number; fix or remove it`);
    return n;
  };
  const size = (key: string): { width: number; height: number } | undefined => {
    const raw = extra[key];
    if (raw === undefined) return undefined;
    const m = /^(\d+)x(\d+)$/.exec(raw.trim());
    if (!m) throw new InputError(`infotext ${key} "${raw}" is not WIDTHxHEIGHT (e.g. 512x768); fix or remove it`);
    return { width: Number(m[1]), height: Number(m[2]) };
  };
  const variation = extra["Variation seed"];
  if (variation !== undefined && !/^\d+$/.test(variation.trim()))
    throw new InputError(`infotext Variation seed "${variation}" is not a whole number; fix or remove it`);
  const resizeFrom = size("Seed resize from");
  const hires = hiresFromInfotext(info, number, size);
  return {
    prompt: info.prompt,
    negativePrompt: info.negativePrompt,
    steps: info.steps,
    cfgScale: info.cfgScale,
    seed: info.seed,
    sampler: info.sampler,
    ...(info.scheduleType !== undefined ? { schedule: info.scheduleType } : {}),
    width: info.width,
    height: info.height,
    ...(info.clipSkip !== undefined ? { clipSkip: info.clipSkip } : {}),
    ...(variation !== undefined
      ? { subseed: BigInt(variation.trim()), subseedStrength: number("Variation seed strength") ?? 0 }
      : {}),
    ...(resizeFrom ? { seedResizeFromW: resizeFrom.width, seedResizeFromH: resizeFrom.height } : {}),
    ...samplerKnobsFromInfotext(number),
    ...(hires
      ? { hires }
      : { ...(info.denoisingStrength !== undefined ? { denoisingStrength: info.denoisingStrength } : {}) }),
  };
}

/** The hires fix, when the infotext has any of its fields (A1111 writes "Hires upscaler" whenever it ran). */
function hiresFromInfotext(
  info: Infotext,
  number: (key: string) => number | undefined,
  size: (key: string) => { width: number; height: number } | undefined,
): HiresParams | undefined {
  const extra = info.extra;
  const resize = size("Hires resize");
  const scale = number("Hires upscale");
  if (scale === undefined && resize === undefined && extra["Hires upscaler"] === undefined) return undefined;
  const steps = number("Hires steps");
  return {
    ...(scale !== undefined ? { scale } : {}),
    ...(resize ? { resizeX: resize.width, resizeY: resize.height } : {}),
    ...(extra["Hires upscaler"] !== undefined ? { upscaler: extra["Hires upscaler"] } : {}),
    ...(steps !== undefined ? { steps } : {}),
    ...(info.denoisingStrength !== undefined ? { denoisingStrength: info.denoisingStrength } : {}),
    ...(extra["Hires prompt"] !== undefined ? { prompt: extra["Hires prompt"] } : {}),
    ...(extra["Hires negative prompt"] !== undefined ? { negativePrompt: extra["Hires negative prompt"] } : {}),
    ...(extra["Hires sampler"] !== undefined ? { sampler: extra["Hires sampler"] } : {}),
    ...(extra["Hires schedule type"] !== undefined ? { schedule: extra["Hires schedule type"] } : {}),
  };
}
