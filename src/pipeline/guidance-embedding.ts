import { UNET_IO } from "../models/unet.js";
import type { PromptConditions, UNetCondition } from "./unet-condition.js";

/**
 * LCM's guidance embedding (diffusers' LatentConsistencyModelPipeline.get_guidance_scale_embedding): the scale
 * w = cfgScale - 1 (diffusers' guidance_scale), times 1000, through `dim` sinusoids (sines then cosines, frequencies
 * exp(-ln(10000) k / (dim/2 - 1))), in float32 as the reference computes it. A distilled LCM UNet was trained
 * with guidance folded in, so it takes this as `timestep_cond` and runs without a classifier-free batch.
 */
export function guidanceScaleEmbedding(cfgScale: number, dim: number): Float32Array {
  const f = Math.fround;
  const w = f(f(cfgScale - 1) * 1000);
  const half = Math.floor(dim / 2);
  const step = f(f(Math.log(10000)) / (half - 1));
  const out = new Float32Array(dim); // an odd width gets one zero at the end, as the reference pads it
  for (let k = 0; k < half; k++) {
    const arg = f(w * f(Math.exp(f(k * -step))));
    out[k] = Math.sin(arg);
    out[half + k] = Math.cos(arg);
  }
  return out;
}

/** Adds an input every image shares, whatever its prompt (LCM's guidance embedding), to both halves' conditions. */
export function withSharedCondition(c: PromptConditions, name: string, data: Float32Array): PromptConditions {
  const add = (m: UNetCondition): UNetCondition => new Map([...m, [name, { data, dims: [data.length] }]]);
  return { uncond: add(c.uncond), cond: add(c.cond) };
}

/** LCM's conditions: the prompt's, plus timestep_cond for the requested guidance scale. */
export function lcmConditions(c: PromptConditions, cfgScale: number, dim: number): PromptConditions {
  return withSharedCondition(c, UNET_IO.timestepCond, guidanceScaleEmbedding(cfgScale, dim));
}
