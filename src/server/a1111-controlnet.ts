/**
 * ControlNet on the A1111 surface as AUTOMATIC1111's ControlNet extension (sd-webui-controlnet) takes it:
 * `alwayson_scripts: {"controlnet": {"args": [unit, ...]}}` in /sdapi/v1/txt2img and img2img, each unit an object
 * with the extension's field names. Fields that have no meaning here (processor_res, control_mode, pixel_perfect,
 * low_vram, ...) are accepted and ignored, as are fields we do not know; disabled units are skipped.
 */
import { encodePng } from "../image/codec.js";
import { controlMap } from "../pipeline/control-maps.js";
import { resolveParams } from "../pipeline/params.js";
import type { ControlNetUnitParams } from "./api-types.js";
import type { ControlUnitUpload } from "./control-units.js";
import { HttpError } from "./http-errors.js";
import { generateParamsOf } from "./job-params.js";
import type { JobRecord, Uploads } from "./store.js";

/** A unit as the extension's API reads it: everything optional; the image under either of its names. */
interface A1111Unit {
  enabled?: unknown;
  input_image?: unknown;
  image?: unknown;
  module?: unknown;
  model?: unknown;
  weight?: unknown;
  guidance_start?: unknown;
  guidance_end?: unknown;
  resize_mode?: unknown;
  threshold_a?: unknown;
  threshold_b?: unknown;
  save_detected_map?: unknown;
}

/** The extension's resize modes by value, with the names its first versions used. */
const RESIZE_MODES: Readonly<Record<string, ControlNetUnitParams["resize_mode"]>> = {
  "just resize": "Just Resize",
  "crop and resize": "Crop and Resize",
  "inner fit (scale to fit)": "Crop and Resize",
  "resize and fill": "Resize and Fill",
  "outer fit (shrink to fit)": "Resize and Fill",
  "envelope (outer fit)": "Resize and Fill",
  "scale to fit (inner fit)": "Crop and Resize",
};

/** The units of a request, in order, with whether each wants its detected map in the response. */
export interface A1111ControlRequest {
  units: ControlUnitUpload[];
  /** Per unit: its control map goes after the generated images (save_detected_map, default true). */
  detectMaps: boolean[];
  /** Per unit: its place in `args` (disabled units are skipped), for messages. */
  fields: string[];
}

/** Where unit i is in a request body, for messages. */
export const a1111UnitField = (i: number) => `alwayson_scripts.controlnet.args.${i}`;

/**
 * The enabled units of `alwayson_scripts.controlnet.args`. A unit without an image takes img2img's init image, as
 * the extension does; a txt2img unit without one is a 422. Module and model names are checked later, with the
 * other API's units (control-units.ts).
 */
export function a1111ControlRequest(alwaysonScripts: unknown, initImage: string | undefined): A1111ControlRequest {
  const out: A1111ControlRequest = { units: [], detectMaps: [], fields: [] };
  if (alwaysonScripts === undefined || alwaysonScripts === null) return out;
  if (typeof alwaysonScripts !== "object" || Array.isArray(alwaysonScripts))
    throw unprocessable('alwayson_scripts must be an object of scripts, as {"controlnet": {"args": [...]}}');
  const script =
    (alwaysonScripts as Record<string, unknown>)["controlnet"] ??
    (alwaysonScripts as Record<string, unknown>)["ControlNet"];
  if (script === undefined || script === null) return out;
  const args = (script as { args?: unknown }).args;
  if (args === undefined || args === null) return out;
  if (!Array.isArray(args))
    throw unprocessable(
      "alwayson_scripts.controlnet.args must be a list of ControlNet units (objects with input_image, module, model, weight, ...)",
    );
  for (const [i, raw] of args.entries()) {
    const field = a1111UnitField(i);
    if (raw === null || typeof raw !== "object" || Array.isArray(raw))
      throw unprocessable(`${field} must be a ControlNet unit object (input_image, module, model, weight, ...)`);
    const u = raw as A1111Unit;
    if (u.enabled === false) continue;
    const image = unitImage(u, field) ?? initImage;
    if (image === undefined)
      throw unprocessable(
        `${field}: no image; give input_image (base64 PNG or JPEG), or use img2img, whose init image a unit without one takes`,
      );
    const model = typeof u.model === "string" ? u.model : undefined;
    if (model === undefined || model.trim() === "" || model.trim().toLowerCase() === "none") {
      throw unprocessable(`${field}.model: a unit needs a ControlNet; give one of GET /controlnet/model_list`);
    }
    out.units.push({
      image,
      model,
      ...(u.module !== undefined && u.module !== null ? { module: text(u.module, `${field}.module`) } : {}),
      ...optionalNumber(u.weight, "weight", field),
      ...optionalNumber(u.guidance_start, "guidance_start", field),
      ...optionalNumber(u.guidance_end, "guidance_end", field),
      ...optionalNumber(u.threshold_a, "threshold_a", field),
      ...optionalNumber(u.threshold_b, "threshold_b", field),
      ...(u.resize_mode !== undefined && u.resize_mode !== null
        ? { resize_mode: resizeMode(u.resize_mode, `${field}.resize_mode`) }
        : {}),
    });
    out.detectMaps.push(u.save_detected_map !== false);
    out.fields.push(field);
  }
  return out;
}

/** `input_image` (the extension's first API) or `image`: base64, or `{image, mask}` (the mask is not used here). */
function unitImage(u: A1111Unit, field: string): string | undefined {
  const v = u.input_image ?? u.image;
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "object" && typeof (v as { image?: unknown }).image === "string")
    return (v as { image: string }).image;
  throw unprocessable(`${field}.input_image must be a base64 image, or {"image": base64, "mask": base64}`);
}

function text(v: unknown, field: string): string {
  if (typeof v !== "string") throw unprocessable(`${field} must be a string`);
  return v;
}

function optionalNumber<K extends string>(v: unknown, key: K, field: string): Partial<Record<K, number>> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "number" || !Number.isFinite(v)) throw unprocessable(`${field}.${key} must be a number`);
  return { [key]: v } as Partial<Record<K, number>>;
}

function resizeMode(v: unknown, field: string): NonNullable<ControlNetUnitParams["resize_mode"]> {
  if (v === 0 || v === 1 || v === 2) return v;
  const found = typeof v === "string" ? RESIZE_MODES[v.trim().toLowerCase()] : undefined;
  if (found === undefined)
    throw unprocessable(
      `${field} ${JSON.stringify(v)} is unknown: use "Just Resize", "Crop and Resize" or "Resize and Fill" (or 0, 1, 2)`,
    );
  return found;
}

/**
 * The control maps of a finished job as its ControlNets saw them (resized and preprocessed), base64 PNG, for the
 * units whose `detect` is set: recomputed from the stored control images, which is cheap and exact (the
 * preprocessors are pure).
 */
export async function detectedMaps(
  job: JobRecord,
  uploads: Uploads,
  detect: readonly boolean[],
  upscalers: readonly string[],
): Promise<string[]> {
  if (!job.params.controlnet?.length || !detect.some((d) => d)) return [];
  const p = resolveParams(generateParamsOf(job.params, uploads), {
    size: job.params.width ?? 512,
    randomSeed: () => 0n,
    // The job ran with them: its hires upscaler, a model file maybe, must resolve here too.
    upscalers,
  });
  const maps: string[] = [];
  for (const [i, unit] of (p.controlnet ?? []).entries()) {
    if (detect[i]) maps.push((await encodePng(await controlMap(unit, p.width, p.height, i))).toString("base64"));
  }
  return maps;
}

/** A 422 as the extension's API answers a unit it cannot use (the message names the field and the fix). */
function unprocessable(message: string): HttpError {
  return new HttpError(422, "invalid_request", message);
}
