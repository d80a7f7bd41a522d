/**
 * The schedulers inside the reference's recorded sd15-tiny pipeline runs: fed the recorded UNet outputs (with
 * classifier-free guidance applied), they must reproduce the recorded model inputs and latents after every step,
 * including img2img's part-way start.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  createScheduler,
  parseSchedulerConfigJson,
  type RawSchedulerConfig,
  type Scheduler,
} from "../../src/schedulers/index.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { expectClose } from "./trace.js";

const GUIDANCE = 7.5;

function run(name: string, sampler: string, x0: Float32Array, begin?: number): void {
  const meta = parseSchedulerConfigJson(readFileSync(ref("goldens/sd15-tiny", `${name}.json`), "utf8"));
  const g = golden("goldens/sd15-tiny", `${name}.safetensors`);
  const s: Scheduler = createScheduler(sampler, meta.scheduler_config as RawSchedulerConfig);
  const steps = (meta.call_kwargs as { num_inference_steps: number }).num_inference_steps;
  s.setTimesteps(steps);
  const start = begin ?? 0;
  if (begin !== undefined) s.setBeginIndex(begin);
  const timesteps = s.timesteps.slice(start);
  const recorded = g.get("unet_timesteps");
  expect(Array.from(timesteps)).toEqual(Array.from(recorded));
  const n = x0.length;
  const inputs = g.get("unet_inputs");
  const outputs = g.get("unet_outputs");
  const after = g.get("latents_after_step");
  let x = x0;
  timesteps.forEach((t, i) => {
    const input = s.scaleModelInput(x, t);
    // The recorded UNet input is [uncond, cond], both the scaled latents.
    expectClose(input, inputs.subarray(2 * i * n, (2 * i + 1) * n), `${name} UNet input ${i}`);
    const uncond = outputs.subarray(2 * i * n, (2 * i + 1) * n);
    const cond = outputs.subarray((2 * i + 1) * n, (2 * i + 2) * n);
    const eps = uncond.map((u, k) => u + GUIDANCE * (cond[k]! - u));
    x = s.step(eps, t, x);
    expectClose(x, after.subarray(i * n, (i + 1) * n), `${name} latents after step ${i}`);
  });
}

describe.skipIf(!HAVE_REFERENCE)("schedulers in the reference sd15-tiny pipeline runs", () => {
  it("PLMS reproduces the 4-step txt2img run", () => {
    const latents = golden("goldens/sd15-tiny/txt2img_inputs.safetensors").get("latents_passed");
    run("txt2img", "PLMS", latents);
  });

  it("DPM++ 2M Karras reproduces the 6-step txt2img run", () => {
    const latents = golden("goldens/sd15-tiny/txt2img_inputs.safetensors").get("latents_passed");
    run("txt2img_dpmpp2m_karras", "DPM++ 2M Karras", latents);
  });

  it("PLMS reproduces the img2img run at strength 0.6: begin index 4, noised by addNoise at the first kept timestep", () => {
    const inputs = golden("goldens/sd15-tiny/img2img_inputs.safetensors");
    const s = createScheduler(
      "PLMS",
      parseSchedulerConfigJson(readFileSync(ref("goldens/sd15-tiny/img2img.json"), "utf8"))
        .scheduler_config as RawSchedulerConfig,
    );
    s.setTimesteps(10);
    // diffusers' img2img: skip the first (1 - strength) of the steps, in model calls (order 1 here).
    const begin = (10 - Math.floor(10 * 0.6)) * s.order;
    s.setBeginIndex(begin);
    const noised = s.addNoise(inputs.get("init_latents_scaled"), inputs.get("noise"), s.timesteps[begin]!);
    expectClose(noised, inputs.get("noised_latents"), "img2img noised latents");
    run("img2img", "PLMS", noised, begin);
  });
});
