/**
 * A1111's sampler knobs on a generation: eta and s_noise (the fresh noise of the ancestral and SDE samplers, and
 * DDIM's eta), the churn of Euler, Heun and DPM2 (s_churn, s_tmin, s_tmax, with s_noise scaling its noise), and
 * the eta noise seed delta (ENSD), which seeds the sampler's noise apart from the initial noise. Each is checked
 * here, before any compute; a knob a sampler does not take has no effect on it, as in A1111.
 */
import { InputError } from "../errors.js";
import { MAX_SEED } from "../random/seed.js";
import { findSampler } from "../schedulers/index.js";
import { BatchNoise } from "./batch-noise.js";
import { checkedInteger, checkedNumber } from "./param-checks.js";

/**
 * The knobs of a generation (GenerateParams'), as asked; once resolved, those that change it: eta as asked, the
 * others only where they differ from their defaults (the churn only with s_churn above 0).
 */
export interface SamplerKnobs {
  /**
   * k-diffusion's eta (A1111's `eta`): the share of fresh noise in each step of the ancestral and SDE samplers
   * (Euler a, DPM2 a, DPM++ 2S a, DPM++ SDE, DPM++ 2M SDE, DPM++ 3M SDE; default 1, 0 makes them deterministic
   * after the initial noise) and DDIM's eta (default 0). The other samplers ignore it, as in A1111.
   */
  eta?: number;
  /** k-diffusion's s_noise (A1111's): scales the fresh noise of those samplers but DDIM, and the churn's (default 1). */
  sNoise?: number;
  /**
   * Karras et al.'s churn (A1111's s_churn, s_tmin, s_tmax) of Euler, Heun and DPM2: before each step the sample is
   * raised to sigma (1 + gamma) with fresh noise (scaled by sNoise), gamma = min(sChurn / steps, sqrt(2) - 1) for a
   * sigma within [sTmin, sTmax] (sTmax 0: no bound). Default 0: off. Other samplers ignore them, as in A1111.
   */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  /**
   * A1111's eta noise seed delta (ENSD, its `eta_noise_seed_delta` setting, e.g. 31337): once the initial noise is
   * drawn, the sampler's noise comes from generators seeded seed + delta instead of carrying on with the seed's.
   * 0 or absent: off.
   */
  etaNoiseSeedDelta?: number;
}

/** The largest ENSD taken: A1111's option is a whole number; past 2^53 a JSON number is no longer exact. */
const MAX_ENSD = Number.MAX_SAFE_INTEGER;

/**
 * Checks the knobs for a generation whose last image takes seed `lastSeed` (ENSD's seed + delta must stay a seed).
 */
export function resolveSamplerKnobs(p: SamplerKnobs, lastSeed: bigint): SamplerKnobs {
  const nonNegative = (name: string, v: number | undefined, hint: string) =>
    v === undefined ? undefined : checkedNumber(name, v, 0, Number.MAX_VALUE, hint);
  const eta = nonNegative("eta", p.eta, "use a number >= 0 (1 is A1111's default; 0 adds no fresh noise)");
  const sNoise = nonNegative("s_noise", p.sNoise, "use a number >= 0 (1 is A1111's default)");
  const sChurn = nonNegative("s_churn", p.sChurn, "use a number >= 0 (0, the default, is off)");
  const sTmin = nonNegative("s_tmin", p.sTmin, "use a sigma >= 0 (0 is the default)");
  const sTmax = nonNegative("s_tmax", p.sTmax, "use a sigma >= 0 (0 is the default: no upper bound)");
  const churn = sChurn !== undefined && sChurn > 0;
  const delta =
    p.etaNoiseSeedDelta === undefined || p.etaNoiseSeedDelta === 0
      ? undefined
      : checkedInteger(
          "eta noise seed delta (ENSD)",
          p.etaNoiseSeedDelta,
          0,
          MAX_ENSD,
          `use a whole number from 0 to ${MAX_ENSD} (31337 is the common one; 0 is off)`,
        );
  if (delta !== undefined && lastSeed + BigInt(delta) > MAX_SEED)
    throw new InputError(
      `eta noise seed delta ${delta} with seed ${lastSeed} needs the seed ${lastSeed + BigInt(delta)} for the ` +
        `sampler's noise, past the largest seed ${MAX_SEED}: use a smaller seed or delta`,
    );
  return {
    ...(eta !== undefined ? { eta } : {}),
    ...(sNoise !== undefined && sNoise !== 1 ? { sNoise } : {}),
    ...(churn ? { sChurn } : {}),
    ...(churn && sTmin ? { sTmin } : {}),
    ...(churn && sTmax ? { sTmax } : {}),
    ...(delta !== undefined ? { etaNoiseSeedDelta: delta } : {}),
  };
}

/**
 * The noise a batch's sampler draws once its initial noise is drawn from `noise`: the same generators, carried
 * on, or with an eta noise seed delta fresh generators seeded seed + delta, one per image, as A1111's ImageRNG
 * replaces its generators after the first draw.
 */
export function samplerNoise(noise: BatchNoise, delta: number | undefined): BatchNoise {
  if (!delta) return noise;
  return new BatchNoise(noise.seeds.map((s) => s + BigInt(delta)));
}

/**
 * The infotext fields of the knobs, as A1111 writes them: "Eta" where the sampler takes an eta and it is not the
 * sampler's default ("Eta DDIM" for DDIM), "Sigma noise" where it takes s_noise and it is not 1, "ENSD" when on
 * and a sampler draws noise (not with eta 0, nor with a deterministic sampler, where it changes nothing).
 * `samplers`: the generation's (the first pass's, then the hires fix's).
 */
export function samplerKnobInfotext(k: SamplerKnobs, samplers: readonly string[]): Record<string, string> {
  const infos = samplers.map((s) => findSampler(s)).filter((s) => s !== undefined);
  const etaTaker = infos.find((s) => s.defaultEta !== undefined);
  const out: Record<string, string> = {};
  if (k.eta !== undefined && etaTaker && k.eta !== etaTaker.defaultEta)
    out[etaTaker.name === "ddim" ? "Eta DDIM" : "Eta"] = String(k.eta);
  const churner = infos.some((s) => s.churns);
  if (k.sChurn !== undefined && churner) out["Sigma churn"] = String(k.sChurn);
  if (k.sTmin !== undefined && churner) out["Sigma tmin"] = String(k.sTmin);
  if (k.sTmax !== undefined && churner) out["Sigma tmax"] = String(k.sTmax);
  if (k.sNoise !== undefined && infos.some((s) => s.takesSNoise || s.churns)) out["Sigma noise"] = String(k.sNoise);
  const drawsNoise = infos.some((s) =>
    s.defaultEta === undefined ? s.stochastic || (s.churns && k.sChurn !== undefined) : (k.eta ?? s.defaultEta) > 0,
  );
  if (k.etaNoiseSeedDelta && drawsNoise) out["ENSD"] = String(k.etaNoiseSeedDelta);
  return out;
}

/** The knobs an infotext names (A1111's keys; "Eta noise seed delta" too), for the request that remakes it. */
export function samplerKnobsFromInfotext(number: (key: string) => number | undefined): SamplerKnobs {
  const eta = number("Eta") ?? number("Eta DDIM");
  const sNoise = number("Sigma noise");
  const sChurn = number("Sigma churn");
  const sTmin = number("Sigma tmin");
  const sTmax = number("Sigma tmax");
  const delta = number("ENSD") ?? number("Eta noise seed delta");
  return {
    ...(eta !== undefined ? { eta } : {}),
    ...(sNoise !== undefined ? { sNoise } : {}),
    ...(sChurn !== undefined ? { sChurn } : {}),
    ...(sTmin !== undefined ? { sTmin } : {}),
    ...(sTmax !== undefined ? { sTmax } : {}),
    ...(delta !== undefined ? { etaNoiseSeedDelta: delta } : {}),
  };
}
