/**
 * A pipeline in a worker thread gives what the pipeline gives in-process: the same images and infotext, every
 * step, the checked previews, cancellation at the next step boundary, and errors of the same class and message.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeImage } from "../../src/image/codec.js";
import {
  CheckpointError,
  GenerationAborted,
  InputError,
  loadPipeline,
  type StableDiffusionPipeline,
  type StepPreview,
} from "../../src/index.js";
import { PolicyRefusal } from "../../src/responsible/prompt-policy.js";
import { ControlBlock } from "../../src/worker/control-block.js";
import { PipelineWorker, type WorkerStepEvent } from "../../src/worker/pipeline-worker.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { tempDir } from "../server/harness.js";
import { embeddingEncoders } from "../../src/pipeline/textual-inversions.js";

const MODEL = ref("models/sd15-tiny");
// A fixed job id: the robust watermark carries it, so both runs mark their images alike.
const JOB = {
  prompt: "a red square",
  negativePrompt: "blue",
  steps: 6,
  seed: 11,
  width: 64,
  height: 64,
  batchSize: 2,
  jobId: "6f1c2a3e-8d4b-4c5a-9e7f-0a1b2c3d4e5f",
};

describe.skipIf(!HAVE_REFERENCE)("a pipeline in a worker thread (sd15-tiny)", () => {
  const dir = tempDir("diffuse-worker-");
  const cacheDir = join(dir.path, "cache");
  const rules = join(dir.path, "rules.json");
  const opts = { cacheDir, threads: 1, safetyChecker: false as const, provenance: false };
  let local: StableDiffusionPipeline;
  let worker: PipelineWorker;

  beforeAll(async () => {
    writeFileSync(rules, JSON.stringify([{ regex: "\\bforbidden\\b", reason: "not here" }]));
    local = await loadPipeline(MODEL, { ...opts, promptPolicy: rules });
    worker = await PipelineWorker.start(MODEL, { ...opts, promptPolicy: rules });
  });
  afterAll(async () => {
    await worker?.close();
    await local?.close();
    dir.remove();
  });

  it("reports the model it loaded as the pipeline does", () => {
    expect(worker.model).toEqual({
      name: local.modelName,
      path: local.checkpoint.path,
      hash: local.modelHash,
      sha256: local.networks.sha256,
      family: local.config.family,
      defaultSize: local.defaultSize,
      defaultCfgScale: local.defaultCfgScale,
      defaultSteps: local.defaultSteps,
      defaultSampler: local.defaultSampler,
      textEncoders: embeddingEncoders(local.checkpoint),
      profile: local.profile,
    });
  });

  it("makes the same images, seeds, infotext, parameters and PNG files as the pipeline in this thread, with every step reported", async () => {
    const localSteps: number[] = [];
    const workerSteps: number[] = [];
    const localLatents: Float32Array[] = [];
    const workerLatents: Float32Array[] = [];
    const a = await local.generate({
      ...JOB,
      onStep: (e) => (localSteps.push(e.step), localLatents.push(e.latents.slice())),
    });
    const b = await worker.generate({
      ...JOB,
      onStep: (e) => (workerSteps.push(e.step), workerLatents.push(e.latents)),
    });
    expect(workerSteps).toEqual([1, 2, 3, 4, 5, 6]);
    expect(workerSteps).toEqual(localSteps);
    expect(workerLatents).toEqual(localLatents);
    expect(b.parameters).toEqual(a.parameters);
    expect(b.info).toBe(a.info);
    expect(b.images.map((i) => [i.seed, i.infotext])).toEqual(a.images.map((i) => [i.seed, i.infotext]));
    for (const [k, img] of b.images.entries()) {
      expect(Buffer.from(img.image.data).equals(Buffer.from(a.images[k]!.image.data))).toBe(true);
      // Without provenance the PNG is deterministic: watermarks and metadata were applied in the thread alike.
      expect((await img.png()).equals(await a.images[k]!.png())).toBe(true);
    }
  });

  it("encodes the formats asked for in the thread, and says how to get another one", async () => {
    const r = await worker.generate({ ...JOB, batchSize: 1, steps: 1, formats: ["jpeg"] });
    const jpeg = await r.images[0]!.encode("jpeg");
    expect([...jpeg.subarray(0, 2)]).toEqual([0xff, 0xd8]);
    await expect(r.images[0]!.png()).rejects.toThrow(InputError);
    await expect(r.images[0]!.png()).rejects.toThrow(/pass formats: \["png"\]/);
  });

  it("gives each step's preview on request, the same as the pipeline's", async () => {
    // Kept in step order: previews are encoded concurrently and may finish in any order.
    const localAsked: Promise<StepPreview>[] = [];
    const workerPreviews: Promise<StepPreview>[] = [];
    await local.generate({ ...JOB, onStep: (e) => localAsked.push(e.preview()) });
    await worker.generate({ ...JOB, onStep: (e) => workerPreviews.push(e.preview()) });
    const localPreviews = (await Promise.all(localAsked)).map((p) => p.png!);
    const got = await Promise.all(workerPreviews);
    expect(got.map((p) => [p.step, p.safety])).toEqual([1, 2, 3, 4, 5, 6].map((s) => [s, "unchecked"]));
    for (const [k, p] of got.entries()) expect(p.png!.equals(localPreviews[k]!)).toBe(true);
  });

  it("sends previews unasked at the interval and at the last step, announced on their step's event", async () => {
    const events: WorkerStepEvent[] = [];
    const pushed: number[] = [];
    await worker.generate({
      ...JOB,
      steps: 5,
      previewIntervalMs: 60_000,
      onStep: (e) => events.push(e),
      onPreview: (_p, at) => pushed.push(at.step),
    });
    // The first step (none shown yet) and the last; the interval keeps the others back.
    expect(events.map((e) => e.previewing)).toEqual([true, false, false, false, true]);
    const last = await events[4]!.preview();
    expect(last.step).toBe(5);
    expect(pushed).toEqual([1, 5]);
  });

  it("cancels at the next step boundary through shared memory: the step running when the cancel came is the last", async () => {
    const ac = new AbortController();
    const control = new ControlBlock();
    const steps: number[] = [];
    let atCancel = -1;
    const outcome = worker
      .generate({
        ...JOB,
        steps: 150,
        signal: ac.signal,
        control,
        onStep: (e) => {
          steps.push(e.step);
          if (e.step === 5) {
            // Read after the flag is set: read before, the thread could finish one more step in between.
            ac.abort();
            atCancel = control.progress()!.step;
          }
        },
      })
      .then(
        () => "finished",
        (e: unknown) => e,
      );
    expect(await outcome).toBeInstanceOf(GenerationAborted);
    // The thread runs ahead of the messages: what it had finished when the flag was set, then one step at most.
    expect(atCancel).toBeGreaterThanOrEqual(5);
    expect(steps.at(-1)! - atCancel).toBeGreaterThanOrEqual(0);
    expect(steps.at(-1)! - atCancel).toBeLessThanOrEqual(1);
    expect(control.progress()!.step).toBe(steps.at(-1));
  });

  it("a signal aborted before the start runs no step", async () => {
    const steps: number[] = [];
    const outcome = await worker
      .generate({ ...JOB, signal: AbortSignal.abort(), onStep: (e) => steps.push(e.step) })
      .catch((e: unknown) => e);
    expect(outcome).toBeInstanceOf(GenerationAborted);
    expect(steps).toEqual([]);
  });

  it("errors cross with their class and message, and the worker goes on", async () => {
    const bad = { ...JOB, sampler: "no-such-sampler" };
    const inProcess = (await local.generate(bad).catch((e: unknown) => e)) as Error;
    const inThread = (await worker.generate(bad).catch((e: unknown) => e)) as Error;
    expect(inProcess).toBeInstanceOf(InputError);
    expect(inThread).toBeInstanceOf(InputError);
    expect(inThread.message).toBe(inProcess.message);

    const refused = await worker.generate({ ...JOB, prompt: "something forbidden" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PolicyRefusal);
    expect((refused as PolicyRefusal).reason).toBe("not here");

    expect((await worker.generate({ ...JOB, steps: 1, batchSize: 1 })).images).toHaveLength(1);
  });

  it("a model that cannot load rejects the start with the loading error", async () => {
    const broken = join(dir.path, "broken.safetensors");
    writeFileSync(broken, Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
    const inProcess = (await loadPipeline(broken, opts).catch((e: unknown) => e)) as Error;
    const inThread = (await PipelineWorker.start(broken, opts).catch((e: unknown) => e)) as Error;
    expect(inProcess).toBeInstanceOf(CheckpointError);
    expect(inThread).toBeInstanceOf(CheckpointError);
    expect(inThread.message).toBe(inProcess.message);
  });

  it("with a checker that flags everything, previews are held to the policy in the thread too", async () => {
    const checker = flagsEverything(join(dir.path, "checker"));
    const strict = await PipelineWorker.start(MODEL, {
      ...opts,
      safetyChecker: checker,
      safetyPolicy: "block",
      previewCheckShare: Infinity,
    });
    try {
      const previews: StepPreview[] = [];
      await strict.generate({ ...JOB, steps: 3, previewIntervalMs: 0, onPreview: (p) => previews.push(p) });
      expect(previews.map((p) => [p.step, p.safety, p.png])).toEqual([1, 2, 3].map((s) => [s, "blocked", undefined]));
    } finally {
      await strict.close();
    }
  });

  it("closing cancels the running generation; later ones fail saying the pipeline was closed", async () => {
    const other = await PipelineWorker.start(MODEL, opts);
    let closed: Promise<void> | undefined;
    const running = other
      .generate({ ...JOB, steps: 150, onStep: (e) => void (e.step === 3 && (closed = other.close())) })
      .catch((e: unknown) => e);
    expect(await running).toBeInstanceOf(GenerationAborted);
    await closed;
    expect(other.alive).toBe(false);
    await expect(other.generate(JOB)).rejects.toThrow(/was closed/);
  });

  it("decodes what it encodes: the PNG of a worker image is its pixels", async () => {
    const r = await worker.generate({ ...JOB, batchSize: 1, steps: 2 });
    const decoded = await decodeImage(await r.images[0]!.png());
    expect(Buffer.from(decoded.data).equals(Buffer.from(r.images[0]!.image.data))).toBe(true);
  });
});
