/**
 * A1111's sampler knobs on its txt2img / img2img requests, where A1111 takes them from: `eta` from the request,
 * else its eta_ancestral setting (eta_ddim for DDIM); the eta noise seed delta (ENSD) from its
 * eta_noise_seed_delta setting; s_churn, s_tmin, s_tmax and s_noise from its settings of those names (A1111 1.6+
 * lets a setting win over the request's field; here the request's field applies when override_settings has none,
 * so a client that sends only the field gets what it asked for). Settings are override_settings', else those
 * stored with POST /sdapi/v1/options.
 */
import { findSampler } from "../schedulers/index.js";
import type { A1111Txt2Img } from "./a1111-schema.js";
import { A1111Error } from "./a1111-mapping.js";
import type { GenerationParams } from "./api-types.js";

type Knobs = Pick<GenerationParams, "eta" | "s_noise" | "s_churn" | "s_tmin" | "s_tmax" | "eta_noise_seed_delta">;

/** The knobs of a request for `sampler` (A1111's label or ours), as our job parameters; only those set. */
export function a1111SamplerKnobs(
  req: A1111Txt2Img,
  sampler: string,
  options: Readonly<Record<string, unknown>>,
): Knobs {
  const overrides = req.override_settings ?? {};
  /** A setting's value: override_settings', else the stored option's; checked to be a number >= 0. */
  const setting = (key: string, where = `override_settings.${key}`): number | undefined => {
    const fromOverride = overrides[key];
    const v = fromOverride ?? options[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      throw new A1111Error(
        422,
        `${fromOverride !== undefined ? where : `option ${key}`}: ${JSON.stringify(v)} must be a number >= 0`,
      );
    return v;
  };
  // The request's own fields, validated by the schema (numbers >= 0 or null).
  const field = (key: "eta" | "s_noise" | "s_churn" | "s_tmin" | "s_tmax") => req[key] ?? undefined;
  const ddim = findSampler(sampler)?.name === "ddim";
  const eta = field("eta") ?? setting(ddim ? "eta_ddim" : "eta_ancestral");
  const delta = setting("eta_noise_seed_delta");
  if (delta !== undefined && !Number.isSafeInteger(delta))
    throw new A1111Error(422, `eta_noise_seed_delta: ${delta} must be a whole number (31337 is the usual one)`);
  const out: Knobs = {};
  if (eta !== undefined) out.eta = eta;
  if (delta) out.eta_noise_seed_delta = delta;
  for (const key of ["s_noise", "s_churn", "s_tmin", "s_tmax"] as const) {
    const v = setting(key) ?? field(key);
    if (v !== undefined) out[key] = v;
  }
  return out;
}
