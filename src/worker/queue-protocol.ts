/**
 * What crosses Redis between `diffuse serve --queue` and `diffuse worker`: the names of the BullMQ queues, a job's
 * data, its progress and its result. Everything is JSON (bullmq stores job data, progress and return values as
 * JSON): bytes travel as base64, seeds as decimal text.
 */
import type { ControlNetUnit, PreviewSafety, ResolvedParams, GenerateParams, StepPreview } from "../pipeline/params.js";
import type { LiveProgress } from "./control-block.js";

/** Every key this project keeps in Redis starts with it (bullmq's own keys too: its `prefix` option). */
export const KEY_PREFIX = "diffuse";

/** The bullmq job name of a generation (one kind of job per queue). */
export const GENERATE = "generate";

/**
 * One queue per model: a job reaches only the workers that serve its model. bullmq refuses ":" in queue names;
 * anything outside a conservative set is percent-encoded, so distinct model names stay distinct.
 */
export function generationQueueName(model: string): string {
  return `generate.${encodeName(model)}`;
}

/**
 * The stream the API server publishes cancellations on (bullmq's QueueEventsProducer) and the workers of the model
 * read (QueueEvents): a queue with no jobs, so workers read only these events, not every job's progress.
 */
export function controlQueueName(model: string): string {
  return `control.${encodeName(model)}`;
}

function encodeName(model: string): string {
  return [...model]
    .map((c) => (/[A-Za-z0-9._-]/.test(c) ? c : `%${c.codePointAt(0)!.toString(16).toUpperCase()}`))
    .join("");
}

/** The custom event a cancellation is published as. */
export const CANCEL_EVENT = "diffuse-cancel";

export interface CancelMessage {
  eventName: typeof CANCEL_EVENT;
  jobId: string;
}

/**
 * A failed job's reason starts with this when it was cancelled (the worker throws bullmq's UnrecoverableError
 * with it, so the cancel is not retried); the API server records such a job as cancelled.
 */
export const CANCELLED_PREFIX = "cancelled";

/**
 * GenerateParams as JSON: no callbacks or signal, the seed as a number or decimal text, the images as base64 beside
 * them (ControlNet units without their images, which travel in QueuedGeneration.controlImages).
 */
export type WireGenerateParams = Omit<
  GenerateParams,
  "onStep" | "signal" | "initImage" | "mask" | "seed" | "subseed" | "controlnet"
> & {
  seed?: number | string;
  subseed?: number | string;
  controlnet?: Omit<ControlNetUnit, "image">[];
};

/** A job's data. */
export interface QueuedGeneration {
  params: WireGenerateParams;
  /** The img2img / inpainting source image's bytes, base64. */
  initImage?: string;
  mask?: string;
  /** The control image of each ControlNet unit (params.controlnet), base64, in unit order. */
  controlImages?: string[];
  /** Previews are made at most this often and sent with the progress (A1111's progress and the SSE steps show them). */
  previewIntervalMs?: number;
}

/** A job's progress (bullmq's job.updateProgress), sent after each step and with each preview. */
export interface GenerationProgress extends LiveProgress {
  preview?: { png?: string; safety: PreviewSafety; step: number };
}

/** A job's return value. */
export interface GenerationOutput {
  images: { png: string; seed: string; infotext: string }[];
  /** The parameters the generation used (defaults filled), seed as decimal text, without the images. */
  parameters: Omit<ResolvedParams, "seed" | "subseed" | "initImage" | "mask"> & { seed: string; subseed?: string };
  progress: { step: number; steps: number };
  /** The worker's name, as it advertises itself. */
  worker: string;
}

export function toQueuedGeneration(p: GenerateParams, previewIntervalMs: number | undefined): QueuedGeneration {
  const { onStep: _s, signal: _a, initImage: init, mask, seed, subseed, controlnet, ...rest } = p;
  return {
    params: {
      ...rest,
      ...(seed !== undefined ? { seed: typeof seed === "bigint" ? seed.toString() : seed } : {}),
      ...(subseed !== undefined ? { subseed: typeof subseed === "bigint" ? subseed.toString() : subseed } : {}),
      ...(controlnet?.length ? { controlnet: controlnet.map(({ image: _i, ...u }) => u) } : {}),
    },
    ...(init !== undefined ? { initImage: base64(init, "init image") } : {}),
    ...(mask !== undefined ? { mask: base64(mask, "mask") } : {}),
    ...(controlnet?.length
      ? { controlImages: controlnet.map((u, i) => base64(u.image, `control image of ControlNet unit ${i}`)) }
      : {}),
    ...(previewIntervalMs !== undefined ? { previewIntervalMs } : {}),
  };
}

export function fromQueuedGeneration(d: QueuedGeneration): Omit<GenerateParams, "onStep" | "signal"> {
  const { controlnet, ...params } = d.params;
  return {
    ...params,
    // A unit whose image is missing is left without one, for the pipeline's check to name it.
    ...(controlnet?.length
      ? { controlnet: controlnet.map((u, i) => ({ ...u, image: Buffer.from(d.controlImages?.[i] ?? "", "base64") })) }
      : {}),
    ...(d.initImage !== undefined ? { initImage: Buffer.from(d.initImage, "base64") } : {}),
    ...(d.mask !== undefined ? { mask: Buffer.from(d.mask, "base64") } : {}),
  };
}

export function wireParameters(r: ResolvedParams): GenerationOutput["parameters"] {
  const { initImage: _i, mask: _m, seed, subseed, controlnet, ...rest } = r;
  // The control images stay behind with the other images (whoever records the job has them); "" marks them absent.
  return {
    ...rest,
    seed: seed.toString(),
    ...(subseed !== undefined ? { subseed: subseed.toString() } : {}),
    ...(controlnet ? { controlnet: controlnet.map((u) => ({ ...u, image: "" })) } : {}),
  };
}

/** The parameters as the pipeline reported them (the images are not needed by whoever records the job). */
export function resolvedParameters(w: GenerationOutput["parameters"]): ResolvedParams {
  const { subseed, ...rest } = w;
  return { ...rest, seed: BigInt(w.seed), ...(subseed !== undefined ? { subseed: BigInt(subseed) } : {}) };
}

export function wirePreview(p: StepPreview): NonNullable<GenerationProgress["preview"]> {
  return { ...(p.png ? { png: p.png.toString("base64") } : {}), safety: p.safety, step: p.step };
}

export function stepPreview(w: NonNullable<GenerationProgress["preview"]>): StepPreview {
  return { png: w.png === undefined ? undefined : Buffer.from(w.png, "base64"), safety: w.safety, step: w.step };
}

function base64(source: string | Uint8Array, what: string): string {
  // A path names a file on the machine that submitted the job, which a worker elsewhere cannot read.
  if (typeof source === "string") throw new TypeError(`the ${what} of a queued job must be bytes, not a path`);
  return Buffer.from(source.buffer, source.byteOffset, source.byteLength).toString("base64");
}

/** How a cancelled job's outcome reads, on either queue backend. */
export function cancelMessage(progress: { step: number; steps: number } | null | undefined): string {
  return progress
    ? `${CANCELLED_PREFIX} at step ${progress.step} of ${progress.steps}`
    : `${CANCELLED_PREFIX} before the first step`;
}
