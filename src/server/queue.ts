import { randomUUID } from "node:crypto";
import { PolicyRefusal, type PromptPolicy } from "../responsible/prompt-policy.js";
import { DiffuseError } from "../errors.js";
import type { StepEvent } from "../pipeline/params.js";
import { GenerationAborted } from "../pipeline/stable-diffusion.js";
import type { ImageRef, JobParams, JobType, SseEvent } from "./api-types.js";
import type { JobEvents } from "./events.js";
import type { ImageFiles } from "./image-files.js";
import { completedJobParams, generateParamsOf } from "./job-params.js";
import type { ModelHost } from "./model-host.js";
import type { ImageRecord, JobRecord, JobSource, JobStore, Uploads } from "./store.js";

/** The job being generated now, with what only memory knows about it. */
export interface RunningJob {
  readonly id: string;
  readonly seq: number;
  readonly startedAt: string;
  /** performance.now() at start, for ETAs. */
  readonly startedMs: number;
  readonly abort: AbortController;
  /** Set by a cancel; an abort without it is a shutdown, which puts the job back in the queue. */
  cancelRequested: boolean;
  progress: { step: number; steps: number; batch: number; batches: number } | null;
  lastStep: StepEvent | undefined;
  lastPreviewMs: number;
}

export interface SubmitRequest {
  type: JobType;
  params: JobParams;
  source: JobSource;
  uploads: Uploads;
}

export type CancelOutcome =
  | { kind: "cancelled" }
  | { kind: "cancelling"; finished: Promise<JobRecord> }
  | { kind: "finished"; job: JobRecord }
  | { kind: "missing" };

export interface QueueOptions {
  previewIntervalMs: number;
  /** Prompts matching a rule are refused at submission (recorded in the history as failed, with the reason). */
  promptPolicy?: PromptPolicy;
  imageUrl: (id: string) => string;
  log: (message: string) => void;
}

/**
 * FIFO of jobs for one loaded model, one generation at a time (each is CPU-bound; two at once only makes both
 * slower). The database is the queue: the worker always takes the oldest queued row, so jobs accepted before a
 * crash are found again after it, in order.
 */
export class JobQueue {
  private current: RunningJob | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private worker: Promise<void> | undefined;
  /** Events go out in order even when a preview's PNG encode finishes after the next step. */
  private emitting: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: JobStore,
    private readonly files: ImageFiles,
    private readonly events: JobEvents,
    readonly model: ModelHost,
    private readonly opts: QueueOptions,
  ) {}

  start(): void {
    this.worker ??= this.loop();
  }

  get running(): RunningJob | undefined {
    return this.current;
  }

  /** Queues a job; throws PolicyRefusal (after recording the refused job in the history) when the prompt policy matches. */
  submit(req: SubmitRequest): JobRecord {
    const refusal = this.opts.promptPolicy?.checkPrompt(req.params.prompt, req.params.negative_prompt ?? "");
    const job = this.store.insert({
      id: randomUUID(),
      model: this.model.name,
      type: req.type,
      params: req.params,
      source: req.source,
      uploads: req.uploads,
      createdAt: new Date().toISOString(),
    });
    if (refusal) {
      const error = new PolicyRefusal(refusal);
      this.store.markFinished(job.id, "failed", error.message, new Date().toISOString());
      throw error;
    }
    this.wake?.();
    return job;
  }

  position(job: JobRecord): number | null {
    return job.state === "queued" ? this.store.position(job) : null;
  }

  queuedCount(): number {
    return this.store.queuedIds(this.model.name).length;
  }

  cancel(id: string): CancelOutcome {
    const cur = this.current;
    if (cur?.id === id) {
      cur.cancelRequested = true;
      cur.abort.abort();
      return { kind: "cancelling", finished: this.whenFinished(id) };
    }
    if (this.store.cancelQueued(id, new Date().toISOString())) {
      this.emit(id, { event: "cancelled", data: { message: "cancelled while queued" } });
      this.notifyPositions();
      return { kind: "cancelled" };
    }
    const job = this.store.get(id);
    return job ? { kind: "finished", job } : { kind: "missing" };
  }

  /** Cancels whatever is running (A1111's interrupt); false when nothing is. */
  interruptRunning(): boolean {
    if (!this.current) return false;
    this.cancel(this.current.id);
    return true;
  }

  /** Resolves with the job's record once it is done, failed or cancelled. */
  whenFinished(id: string): Promise<JobRecord> {
    return new Promise((resolve, reject) => {
      const unsubscribe = this.events.subscribe(id, (e) => {
        if (e.event === "done" || e.event === "error" || e.event === "cancelled") {
          unsubscribe();
          resolve(this.store.get(id)!);
        }
      });
      const job = this.store.get(id);
      if (!job) {
        unsubscribe();
        reject(new Error(`no job ${id}`));
      } else if (job.state === "done" || job.state === "failed" || job.state === "cancelled") {
        unsubscribe();
        resolve(job);
      }
    });
  }

  /**
   * Stops taking jobs; a running one is aborted and put back at its place in the queue (a shutdown is not the
   * job's fault), so the next start runs it first.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.current?.abort.abort();
    await this.worker;
    await this.emitting;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const next = this.store.nextQueued(this.model.name);
      if (!next) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        await this.run(next);
      } catch (e) {
        // Only the bookkeeping can get here (a full disk, a database error): the job stays in the database as
        // it was, and the pause keeps a persistent fault from spinning.
        this.opts.log(`queue error on job ${next.id}: ${(e as Error)?.stack ?? String(e)}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  private async run(job: JobRecord): Promise<void> {
    const startedAt = new Date().toISOString();
    this.store.markRunning(job.id, startedAt);
    const cur: RunningJob = {
      id: job.id,
      seq: job.seq,
      startedAt,
      startedMs: performance.now(),
      abort: new AbortController(),
      cancelRequested: false,
      progress: null,
      lastStep: undefined,
      lastPreviewMs: -Infinity,
    };
    this.current = cur;
    this.emit(job.id, { event: "running", data: { started_at: startedAt } });
    this.notifyPositions();
    try {
      const pipe = await this.model.get();
      const uploads = this.store.uploads(job.id);
      const result = await pipe.generate({
        ...generateParamsOf(job.params, uploads),
        signal: cur.abort.signal,
        onStep: (e) => this.onStep(cur, e),
      });
      const images: ImageRecord[] = [];
      for (const [index, img] of result.images.entries()) {
        const id = randomUUID();
        await this.files.write(id, await img.png());
        images.push({ id, jobId: job.id, index, seed: img.seed, infotext: img.infotext });
      }
      const steps = cur.progress ?? { step: 0, steps: 0 };
      this.store.markDone(job.id, {
        finishedAt: new Date().toISOString(),
        params: completedJobParams(job.params, result.parameters),
        images,
        stepsDone: steps.step,
        stepsTotal: steps.steps,
      });
      this.emit(job.id, { event: "done", data: { images: images.map((i) => this.imageRef(i)) } });
    } catch (e) {
      this.finishWithError(job, cur, e);
    } finally {
      this.current = undefined;
    }
  }

  private finishWithError(job: JobRecord, cur: RunningJob, e: unknown): void {
    const now = new Date().toISOString();
    const progress = cur.progress ?? undefined;
    if (e instanceof GenerationAborted && !cur.cancelRequested && this.stopping) {
      this.store.requeue(job.id);
      return;
    }
    if (e instanceof GenerationAborted) {
      const message = progress ? `cancelled at step ${progress.step} of ${progress.steps}` : "cancelled before the first step";
      this.store.markFinished(job.id, "cancelled", message, now, progress);
      this.emit(job.id, { event: "cancelled", data: { message } });
      return;
    }
    // Our errors carry a message that says what to do; anything else is a bug, reported as such.
    const message = e instanceof DiffuseError ? e.message : `internal error: ${(e as Error)?.message ?? String(e)}`;
    if (!(e instanceof DiffuseError)) this.opts.log(`job ${job.id} failed: ${(e as Error)?.stack ?? String(e)}`);
    this.store.markFinished(job.id, "failed", message, now, progress);
    this.emit(job.id, { event: "error", data: { message } });
  }

  private onStep(cur: RunningJob, e: StepEvent): void {
    cur.progress = { step: e.step, steps: e.steps, batch: e.batch, batches: e.batches };
    cur.lastStep = e;
    const base = { step: e.step, steps: e.steps, batch: e.batch, batches: e.batches };
    const now = performance.now();
    // Previews cost a decode and a PNG encode: only for someone watching, and not more often than the interval.
    const wantPreview =
      this.events.hasListeners(cur.id) && (now - cur.lastPreviewMs >= this.opts.previewIntervalMs || e.step === e.steps);
    if (!wantPreview) {
      this.emit(cur.id, { event: "step", data: base });
      return;
    }
    cur.lastPreviewMs = now;
    // The pipeline holds previews to the safety checker and policy of the final images (and makes each step's
    // once, shared with /sdapi/v1/progress); a withheld one is said so, a failed one is left out.
    const preview = e.preview().then(
      (p) => (p.png ? { preview: `data:image/png;base64,${p.png.toString("base64")}` } : p.safety === "blocked" ? { preview_withheld: "safety" as const } : {}),
      () => ({}),
    );
    this.inOrder(async () => {
      this.events.publish(cur.id, { event: "step", data: { ...base, ...(await preview) } });
    });
  }

  private emit(jobId: string, event: SseEvent): void {
    this.inOrder(() => this.events.publish(jobId, event));
  }

  private inOrder(deliver: () => void | Promise<void>): void {
    this.emitting = this.emitting.then(deliver).catch((err: unknown) => {
      this.opts.log(`event listener failed: ${(err as Error)?.stack ?? String(err)}`);
    });
  }

  /** Tells listeners of queued jobs their new place after the queue moved. */
  private notifyPositions(): void {
    const watched = new Set(this.events.subscribedJobIds());
    if (watched.size === 0) return;
    this.store.queuedIds(this.model.name).forEach((id, position) => {
      if (watched.has(id)) this.emit(id, { event: "queued", data: { position } });
    });
  }

  imageRef(img: Pick<ImageRecord, "id" | "seed" | "infotext">): ImageRef {
    return { id: img.id, url: this.opts.imageUrl(img.id), seed: img.seed, infotext: img.infotext };
  }
}
