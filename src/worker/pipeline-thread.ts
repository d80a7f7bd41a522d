/**
 * The body of a worker thread that hosts one pipeline (started by PipelineWorker): it loads the model, then runs
 * the generations the host sends, one message at a time each way. Everything CPU-bound (reading and hashing the
 * checkpoint, building graphs, every network run, decoding, the safety checker, watermarks, PNG encoding and
 * signing) happens here, so the thread that started it keeps answering while a job runs.
 */
import { parentPort, workerData } from "node:worker_threads";
import { loadPipeline } from "../pipeline/load-pipeline.js";
import type { StepEvent, StepPreview } from "../pipeline/params.js";
import type { StableDiffusionPipeline } from "../pipeline/stable-diffusion.js";
import { embeddingEncoders } from "../pipeline/textual-inversions.js";
import { ControlBlock } from "./control-block.js";
import type { HostMessage, LoadedModel, ThreadMessage, TransportedImage, WorkerData } from "./messages.js";
import { transportError } from "./transported-error.js";

/** Step previews kept for a host's later request, per generation: a caller asks for the step it was just told of. */
const KEPT_PREVIEWS = 8;

interface Run {
  controller: AbortController;
  /** `${batch}:${step}` -> that step's preview, the newest last. */
  previews: Map<string, () => Promise<StepPreview>>;
}

const port = parentPort!;
const { path, options } = workerData as WorkerData;
const runs = new Map<number, Run>();
/** Generations still running, for close to wait on. */
const running = new Set<Promise<void>>();

function post(message: ThreadMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

/** An own copy of bytes that may be a view into a larger (pooled) buffer, so it can be transferred whole. */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function sendPreview(id: number, batch: number, step: number, preview: () => Promise<StepPreview>): void {
  preview().then(
    (p) => {
      const png = p.png && own(p.png);
      post(
        { type: "preview", id, batch, step, preview: { png, safety: p.safety, step: p.step } },
        png ? [png.buffer as ArrayBuffer] : [],
      );
    },
    (e: unknown) => post({ type: "preview", id, batch, step, preview: undefined, error: transportError(e) }),
  );
}

async function generate(pipe: StableDiffusionPipeline, m: Extract<HostMessage, { type: "generate" }>): Promise<void> {
  const control = new ControlBlock(m.control);
  const run: Run = { controller: new AbortController(), previews: new Map() };
  runs.set(m.id, run);
  if (control.cancelled) run.controller.abort();
  let lastPreviewMs = -Infinity;
  const onStep = (e: StepEvent) => {
    control.report(e);
    // Read synchronously, before the pipeline decides whether to start the next step.
    if (control.cancelled) run.controller.abort();
    run.previews.set(`${e.batch}:${e.step}`, e.preview);
    if (run.previews.size > KEPT_PREVIEWS) run.previews.delete(run.previews.keys().next().value!);
    const now = performance.now();
    const previewing =
      m.previewIntervalMs !== undefined && (now - lastPreviewMs >= m.previewIntervalMs || e.step === e.steps);
    if (previewing) lastPreviewMs = now;
    post({
      type: "step",
      id: m.id,
      step: e.step,
      steps: e.steps,
      batch: e.batch,
      batches: e.batches,
      elapsed: e.elapsed,
      latents: e.latents,
      previewing,
    });
    if (previewing) sendPreview(m.id, e.batch, e.step, e.preview);
  };
  try {
    const result = await pipe.generate({
      ...m.params,
      signal: run.controller.signal,
      onStep,
      skipBatch: (batch) => control.skips(batch),
    });
    const images: TransportedImage[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const img of result.images) {
      const encoded: TransportedImage["encoded"] = {};
      for (const format of m.formats) {
        const bytes = own(await img.encode(format));
        encoded[format] = bytes;
        transfer.push(bytes.buffer as ArrayBuffer);
      }
      const pixels = own(img.image.data);
      transfer.push(pixels.buffer as ArrayBuffer);
      images.push({
        image: { width: img.image.width, height: img.image.height, data: pixels },
        seed: img.seed,
        ...(img.subseed !== undefined ? { subseed: img.subseed } : {}),
        infotext: img.infotext,
        encoded,
      });
    }
    post(
      {
        type: "done",
        id: m.id,
        images,
        controlMaps: result.controlMaps,
        parameters: result.parameters,
        info: result.info,
        warnings: result.warnings,
      },
      transfer,
    );
  } catch (e) {
    post({ type: "failed", id: m.id, error: transportError(e) });
  } finally {
    runs.delete(m.id);
  }
}

function onMessage(pipe: StableDiffusionPipeline, m: HostMessage): void {
  switch (m.type) {
    case "generate": {
      const done = generate(pipe, m);
      running.add(done);
      void done.finally(() => running.delete(done));
      break;
    }
    case "cancel":
      runs.get(m.id)?.controller.abort();
      break;
    case "close":
      void close(pipe);
      break;
    case "preview": {
      const preview = runs.get(m.id)?.previews.get(`${m.batch}:${m.step}`);
      if (preview) sendPreview(m.id, m.batch, m.step, preview);
      else post({ type: "preview", id: m.id, batch: m.batch, step: m.step, preview: undefined });
      break;
    }
  }
}

/**
 * Cancels what runs and waits for it to stop (its outcome is sent first), releases the networks, and ends the
 * thread (process.exit in a worker ends only the worker).
 */
async function close(pipe: StableDiffusionPipeline): Promise<void> {
  for (const run of runs.values()) run.controller.abort();
  await Promise.all(running);
  await pipe.close().catch(() => undefined);
  process.exit(0);
}

function describe(p: StableDiffusionPipeline): LoadedModel {
  const r = p.refiner;
  return {
    name: p.modelName,
    path: p.checkpoint.path,
    hash: p.modelHash,
    sha256: p.networks.sha256,
    family: p.config.family,
    defaultSize: p.defaultSize,
    defaultCfgScale: p.defaultCfgScale,
    defaultSteps: p.defaultSteps,
    defaultSampler: p.defaultSampler,
    ...(p.recommendedSteps !== undefined ? { recommendedSteps: p.recommendedSteps } : {}),
    ...(p.recommendedSampler !== undefined ? { recommendedSampler: p.recommendedSampler } : {}),
    ...(p.promptExamples ? { promptExamples: p.promptExamples } : {}),
    ...(r
      ? {
          refiner: { name: r.identity.name, path: r.checkpoint.path, hash: r.identity.hash, sha256: r.networks.sha256 },
        }
      : {}),
    textEncoders: embeddingEncoders(p.checkpoint),
    profile: p.profile,
  };
}

try {
  const pipe = await loadPipeline(path, { ...options, onStatus: (message) => post({ type: "status", message }) });
  port.on("message", (m: HostMessage) => onMessage(pipe, m));
  post({ type: "loaded", model: describe(pipe) });
} catch (e) {
  post({ type: "load-failed", error: transportError(e) });
}
