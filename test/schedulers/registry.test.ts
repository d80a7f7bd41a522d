import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import {
  createScheduler,
  DDIMScheduler,
  DPM2AncestralScheduler,
  DPM2Scheduler,
  DPMPP2SAncestralScheduler,
  DPMPP3MSDEScheduler,
  RestartScheduler,
  DPMSolverMultistepScheduler,
  DPMSolverSDEScheduler,
  EulerAncestralDiscreteScheduler,
  EulerDiscreteScheduler,
  findSampler,
  HeunDiscreteScheduler,
  LCMScheduler,
  listSamplers,
  LMSDiscreteScheduler,
  PNDMScheduler,
  samplerDisplayName,
  STABLE_DIFFUSION_SCHEDULER_CONFIG as SD,
  UniPCMultistepScheduler,
} from "../../src/schedulers/index.js";

const EXPECTED: [string, string, new (...a: never[]) => unknown, Record<string, unknown>][] = [
  ["ddim", "DDIM", DDIMScheduler, {}],
  ["pndm", "PLMS", PNDMScheduler, { skip_prk_steps: true }],
  ["lms", "LMS", LMSDiscreteScheduler, { use_karras_sigmas: false }],
  ["euler", "Euler", EulerDiscreteScheduler, { use_karras_sigmas: false }],
  ["euler-a", "Euler a", EulerAncestralDiscreteScheduler, {}],
  ["heun", "Heun", HeunDiscreteScheduler, { use_karras_sigmas: false }],
  [
    "dpm++2m",
    "DPM++ 2M",
    DPMSolverMultistepScheduler,
    { algorithm_type: "dpmsolver++", solver_order: 2, use_karras_sigmas: false },
  ],
  [
    "dpm++2m-karras",
    "DPM++ 2M Karras",
    DPMSolverMultistepScheduler,
    { algorithm_type: "dpmsolver++", use_karras_sigmas: true },
  ],
  ["dpm++sde-karras", "DPM++ SDE Karras", DPMSolverSDEScheduler, { use_karras_sigmas: true }],
  ["unipc", "UniPC", UniPCMultistepScheduler, {}],
  ["dpm2", "DPM2", DPM2Scheduler, {}],
  ["dpm2-a", "DPM2 a", DPM2AncestralScheduler, { eta: 1 }],
  ["dpm++2s-a", "DPM++ 2S a", DPMPP2SAncestralScheduler, { eta: 1 }],
  ["dpm++3m-sde", "DPM++ 3M SDE", DPMPP3MSDEScheduler, { eta: 1, s_noise: 1 }],
  ["restart", "Restart", RestartScheduler, {}],
  ["lcm", "LCM", LCMScheduler, {}],
];

describe("createScheduler", () => {
  for (const [name, label, cls, config] of EXPECTED) {
    it(`makes ${label} from "${name}", "${label}" and "${label.toUpperCase()}" with the model's schedule`, () => {
      for (const n of [name, label, label.toUpperCase(), ` ${name} `]) {
        const s = createScheduler(n, SD) as unknown as { config: Record<string, unknown> };
        expect(s).toBeInstanceOf(cls);
        expect(s.config).toMatchObject(config);
        // Every sampler inherits the model's training schedule and spacing.
        expect(s.config).toMatchObject({ beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 });
        if ("timestep_spacing" in s.config && name !== "lcm") expect(s.config.timestep_spacing).toBe("leading");
      }
    });
  }

  it("turns Karras off for the plain sampler even when the model's config asks for it", () => {
    const s = createScheduler("DPM++ 2M", { ...SD, use_karras_sigmas: true }) as DPMSolverMultistepScheduler;
    expect(s.config.use_karras_sigmas).toBe(false);
  });

  it("rejects an unknown sampler with an InputError that lists the valid names", () => {
    expect(() => createScheduler("euler-b", SD)).toThrow(InputError);
    try {
      createScheduler("euler-b", SD);
    } catch (e) {
      const msg = (e as Error).message;
      for (const [name, label] of EXPECTED) {
        expect(msg).toContain(name);
        expect(msg).toContain(`"${label}"`);
      }
    }
  });

  it("gives a runnable scheduler: every sampler completes a 4-step run with its noise", () => {
    for (const info of listSamplers()) {
      const s = createScheduler(info.name, SD);
      s.setTimesteps(4);
      let x: Float32Array = new Float32Array(64).fill(s.initNoiseSigma);
      const noise = {
        randn: (shape: readonly number[]) => new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.1),
      };
      for (const t of s.timesteps) {
        expect(s.scaleModelInput(x, t).every(Number.isFinite), info.name).toBe(true);
        x = s.step(new Float32Array(64).fill(0.5), t, x, noise);
      }
      expect(x.every(Number.isFinite), info.name).toBe(true);
      expect(s.timesteps.length, info.name).toBe(info.callsPerStep === 2 ? 7 : info.name === "pndm" ? 5 : 4);
    }
  });

  it("gives a runnable img2img: every sampler starts at setBeginIndex after addNoise and finishes the schedule", () => {
    for (const info of listSamplers()) {
      const s = createScheduler(info.name, SD);
      s.setTimesteps(10);
      const begin = 4 * s.order;
      s.setBeginIndex(begin);
      const timesteps = s.timesteps.slice(begin);
      let x: Float32Array = s.addNoise(new Float32Array(64).fill(0.3), new Float32Array(64).fill(1), timesteps[0]!);
      const noise = {
        randn: (shape: readonly number[]) => new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(-0.1),
      };
      for (const t of timesteps) x = s.step(new Float32Array(64).fill(0.2), t, x, noise);
      expect(x.every(Number.isFinite), info.name).toBe(true);
    }
  });
});

describe("listSamplers", () => {
  it("lists each sampler once with its A1111 label, stochastic flag and cost per step", () => {
    const list = listSamplers();
    expect(new Set(list.map((s) => s.name)).size).toBe(list.length);
    expect(new Set(list.map((s) => s.label.toLowerCase())).size).toBe(list.length);
    for (const [name, label] of EXPECTED) expect(list).toContainEqual(expect.objectContaining({ name, label }));
    expect(findSampler("Euler a")).toMatchObject({ name: "euler-a", stochastic: true, callsPerStep: 1 });
    expect(findSampler("heun")).toMatchObject({ stochastic: false, callsPerStep: 2 });
    expect(findSampler("nope")).toBeUndefined();
    expect(samplerDisplayName("dpm++2m-karras")).toBe("DPM++ 2M Karras");
    // A1111's default schedule type for the k-diffusion-only samplers; none for those with their own schedule.
    expect(findSampler("DPM2")).toMatchObject({ defaultSchedule: "karras", callsPerStep: 2 });
    expect(findSampler("dpm++3m-sde")).toMatchObject({ defaultSchedule: "exponential", stochastic: true });
    expect(findSampler("Euler")?.defaultSchedule).toBeUndefined();
  });
});
