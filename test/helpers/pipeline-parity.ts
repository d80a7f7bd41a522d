import { expect } from "vitest";
import { loadPipeline, type LoadOptions } from "../../src/pipeline/load-pipeline.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { golden, ref, relErr } from "./fixtures.js";

export const PROMPT = "a photo of an astronaut riding a horse on mars";

/** Largest difference between our pixels and a reference uint8 image, in 1/255 steps. */
export function maxPixelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`image sizes differ: ${a.length} vs ${b.length} values`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Runs `params` and checks it against a golden pipeline run: the latents after every step (rel err < 1e-4;
 * `latentsKey` names the golden's per-step tensor) and the final image within 1/255 per pixel.
 */
export async function expectGoldenRun(
  pipe: StableDiffusionPipeline,
  fixture: string,
  params: GenerateParams,
  latentsKey = "latents_after_step",
): Promise<void> {
  const gold = golden(fixture);
  const perStep = gold.get(latentsKey);
  const steps = gold.shape(latentsKey)[0]!;
  const n = perStep.length / steps;
  const errors: number[] = [];
  const { images } = await pipe.generate({
    ...params,
    onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
  });
  expect(errors.length).toBe(steps);
  for (const e of errors) expect(e).toBeLessThan(1e-4);
  expect(maxPixelDiff(images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
}

export interface TinyLayout {
  name: string;
  path: string;
  opts: LoadOptions;
}

/** A tiny reference model in both layouts: its diffusers folder, and its single file with the folder as --config. */
export function tinyLayouts(model: string): TinyLayout[] {
  return [
    { name: "diffusers folder", path: ref(`models/${model}`), opts: {} },
    {
      name: "single file with the folder as --config",
      path: ref(`models/${model}.ldm.safetensors`),
      opts: { config: ref(`models/${model}`) },
    },
  ];
}

/** Loads each layout's pipeline once per test file (building graphs is the slow part); `closeAll` in afterAll. */
export class PipelineCache {
  private readonly pipes = new Map<string, Promise<StableDiffusionPipeline>>();

  constructor(private readonly opts: LoadOptions) {}

  load(l: TinyLayout): Promise<StableDiffusionPipeline> {
    let p = this.pipes.get(l.path);
    if (!p) {
      p = loadPipeline(l.path, { ...this.opts, ...l.opts });
      this.pipes.set(l.path, p);
    }
    return p;
  }

  async closeAll(): Promise<void> {
    for (const p of this.pipes.values()) await (await p.catch(() => undefined))?.close();
    this.pipes.clear();
  }
}
