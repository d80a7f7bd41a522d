/**
 * The library's loading API takes `worker: true` to host the pipeline in a worker thread: the same
 * `await pipe.generate(...)` and the same results, computed off the caller's thread.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import {
  GenerationAborted,
  loadPipeline,
  PipelineWorker,
  StableDiffusionPipeline,
  type Pipeline,
} from "../../src/index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { tempDir } from "../server/harness.js";

const MODEL = ref("models/sd15-tiny");
const JOB = {
  prompt: "a red square",
  steps: 3,
  seed: 5,
  width: 64,
  height: 64,
  jobId: "0d6f6f0e-3f1a-4f7e-9d55-2b8f5d1c9a10",
};

describe.skipIf(!HAVE_REFERENCE)("loadPipeline(path, { worker })", () => {
  const dir = tempDir("diffuse-load-option-");
  const opts = { cacheDir: join(dir.path, "cache"), threads: 1, safetyChecker: false as const, provenance: false };
  let inThread: PipelineWorker;
  let inProcess: StableDiffusionPipeline;

  beforeAll(async () => {
    inThread = await loadPipeline(MODEL, { ...opts, worker: true });
    inProcess = await loadPipeline(MODEL, opts);
  });
  afterAll(async () => {
    await inThread?.close();
    await inProcess?.close();
    dir.remove();
  });

  it("worker: true hosts the pipeline in a worker thread; without it the pipeline is loaded in the caller's thread", () => {
    expect(inThread).toBeInstanceOf(PipelineWorker);
    expect(inThread.alive).toBe(true);
    expect(inProcess).toBeInstanceOf(StableDiffusionPipeline);
  });

  it("generates the same images with the same call, reporting every step", async () => {
    // Both through the one interface a caller programs against.
    const run = async (pipe: Pipeline) => {
      const steps: number[] = [];
      const r = await pipe.generate({ ...JOB, onStep: (e) => steps.push(e.step) });
      return { steps, r, png: await r.images[0]!.png() };
    };
    const a = await run(inProcess);
    const b = await run(inThread);
    expect(b.steps).toEqual([1, 2, 3]);
    expect(b.steps).toEqual(a.steps);
    expect(b.r.parameters).toEqual(a.r.parameters);
    expect(b.r.images.map((i) => [i.seed, i.infotext])).toEqual(a.r.images.map((i) => [i.seed, i.infotext]));
    expect(b.png.equals(a.png)).toBe(true);
  });

  it("an abort signal stops the threaded generation as it stops the in-process one", async () => {
    const ac = new AbortController();
    const outcome = await inThread
      .generate({ ...JOB, steps: 150, signal: ac.signal, onStep: (e) => void (e.step === 2 && ac.abort()) })
      .catch((e: unknown) => e);
    expect(outcome).toBeInstanceOf(GenerationAborted);
  });

  it("close() ends the thread", async () => {
    const other = await loadPipeline(MODEL, { ...opts, worker: true });
    await other.close();
    expect(other.alive).toBe(false);
  });
});
