import { randomUUID } from "node:crypto";
import { PolicyRefusal, type PromptPolicy } from "../responsible/prompt-policy.js";
import { DiffuseError } from "../errors.js";
import type { StepPreview } from "../pipeline/params.js";
import { GenerationAborted } from "../pipeline/generation-aborted.js";
import { seedToJson } from "../random/seed.js";
import { ControlBlock, type LiveProgress } from "../worker/control-block.js";
import type { WorkerStepEvent } from "../worker/pipeline-worker.js";
import type { ImageRef, JobParams, JobType, SseEvent } from "./api-types.js";
import type { JobEvents } from "./events.js";
import type { ImageFiles } from "./image-files.js";
import { completedJobParams, generateParamsOf } from "./job-params.js";
import type { ModelHost } from "./model-host.js";
import type { ImageRecord, JobRecord, JobSource, JobStore, Uploads } from "./store.js";

/** The job being generated now, with what only memory knows about it. */
export class RunningJob {
  /** performance.now() at start, for ETAs. */
  readonly startedMs = performance.now();
  readonly abort = new AbortController();
  /** Cancel flag and live progress, shared with the worker thread that runs the job. */
  readonly control = new ControlBlock();
  /** Set by a cancel; an abort without it is a shutdown, which puts the job back in the queue. */
  cancelRequested = false;
  /** The newest preview the worker sent (checked as the pipeline checks previews), for A1111's progress. */
  latestPreview: StepPreview | undefined;

  constructor(
    readonly id: string,
    readonly seq: number,
    readonly startedAt: string,
  ) {}

  /** The last step the worker finished, read from shared memory: never behind a message still on its way. */
  get progress(): LiveProgress | null {
    return this.control.progress();
  }
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

/** A finished job's outcome that the database could not take yet (a full disk): written as soon as it can be. */
interface UnsavedOutcome {
  state: "failed" | "cancelled";
  error: string;
  finishedAt: string;
  progress: { step: number; steps: number } | undefined;
  /** The event that told listeners; sent again when it lands, for streams opened in between. */
  event: SseEvent;
}

/** How often a queue held up by its database (a full disk) tries again. */
const STALLED_RETRY_MS = 1000;

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
  /**
   * Outcomes the database refused (a full disk), by job id. The queue writes them before it takes another job,
   * so no job stays "running" in the database with nothing running it.
   */
  private readonly unsaved = new Map<string, UnsavedOutcome>();

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
    const refused = refusal ? new PolicyRefusal(refusal) : undefined;
    // Throws StorageFullError (507) when the database cannot take it: nothing was accepted.
    const job = this.store.insert({
      id: randomUUID(),
      model: this.model.name,
      type: req.type,
      params: req.params,
      source: req.source,
      uploads: req.uploads,
      createdAt: new Date().toISOString(),
      refused: refused?.message,
    });
    if (refused) throw refused;
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
    return job ? { kind: "finished", job: this.withUnsavedOutcome(job) } : { kind: "missing" };
  }

  /** The job as clients should see it: an outcome still waiting for room in the database is its state already. */
  withUnsavedOutcome(job: JobRecord): JobRecord {
    const o = this.unsaved.get(job.id);
    if (!o) return job;
    return {
      ...job,
      state: o.state,
      error: o.error,
      finishedAt: o.finishedAt,
      stepsDone: o.progress?.step ?? job.stepsDone,
      stepsTotal: o.progress?.steps ?? job.stepsTotal,
    };
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
          resolve(this.withUnsavedOutcome(this.store.get(id)!));
        }
      });
      const stored = this.store.get(id);
      const job = stored && this.withUnsavedOutcome(stored);
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
    try {
      this.saveOutcomes();
    } catch (e) {
      // Still "running" in the database: the next start takes it for interrupted and runs it again.
      this.opts.log(`could not record the outcome of job(s) ${[...this.unsaved.keys()].join(", ")}: ${(e as Error)?.message ?? String(e)}`);
    }
    await this.emitting;
  }

  private async loop(): Promise<void> {
    /** Why the queue is held up (a full disk), logged when it starts and when it ends rather than at every try. */
    let stalled: string | undefined;
    while (!this.stopping) {
      let next: JobRecord | undefined;
      const startedAt = new Date().toISOString();
      try {
        this.saveOutcomes();
        next = this.store.nextQueued(this.model.name);
        if (next) this.store.markRunning(next.id, startedAt);
      } catch (e) {
        // The database cannot be written (a full disk, an I/O error): the job stays queued, nothing is lost,
        // and the queue tries again until it can go on, without a restart.
        const reason = e instanceof DiffuseError ? e.message : ((e as Error)?.stack ?? String(e));
        if (reason !== stalled) this.opts.log(`the queue is waiting: ${reason}; trying again every ${STALLED_RETRY_MS / 1000} s`);
        stalled = reason;
        await this.sleep(STALLED_RETRY_MS);
        continue;
      }
      if (stalled !== undefined) {
        this.opts.log("the queue goes on: the database takes writes again");
        stalled = undefined;
      }
      if (!next) {
        await this.sleep(undefined);
        continue;
      }
      await this.run(next, startedAt);
    }
  }

  /** Until a submit or stop wakes the worker, or `ms` pass. */
  private async sleep(ms: number | undefined): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      if (ms !== undefined) timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.wake = undefined;
  }

  /** Writes the outcomes the database refused before; throws (and keeps the rest) while it still cannot. */
  private saveOutcomes(): void {
    for (const [id, o] of this.unsaved) {
      this.store.markFinished(id, o.state, o.error, o.finishedAt, o.progress);
      this.unsaved.delete(id);
      this.emit(id, o.event);
    }
  }

  /** Runs a job already marked running; never throws: every way out records an outcome or keeps it for later. */
  private async run(job: JobRecord, startedAt: string): Promise<void> {
    const cur = new RunningJob(job.id, job.seq, startedAt);
    this.current = cur;
    /** Image files on disk for this job: removed unless the database records them. */
    const written: string[] = [];
    try {
      this.emit(job.id, { event: "running", data: { started_at: startedAt } });
      this.notifyPositions();
      const pipe = await this.model.get();
      const uploads = this.store.uploads(job.id);
      const result = await pipe.generate({
        ...generateParamsOf(job.params, uploads),
        // The robust watermark carries the job's id, so a detected mark leads back to this job's history entry.
        job_id: job.id,
        signal: cur.abort.signal,
        control: cur.control,
        // Made in the worker at the interval whoever watches (SSE, A1111's progress polls) or not: a preview costs
        // a small PNG encode there, and a poll is then answered at once with the newest one.
        previewIntervalMs: this.opts.previewIntervalMs,
        onPreview: (p) => (cur.latestPreview = p),
        onStep: (e) => this.onStep(cur, e),
      });
      const images: ImageRecord[] = [];
      for (const [index, img] of result.images.entries()) {
        const id = randomUUID();
        const png = await img.png();
        written.push(id);
        await this.files.write(id, png);
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
      await this.removeImages(job.id, written);
      this.finishWithError(job, cur, e);
    } finally {
      this.current = undefined;
    }
  }

  /** Images of a job that ends without them: no file stays behind that the history does not know. */
  private async removeImages(jobId: string, ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      await this.files.remove(id).catch((err: unknown) => this.opts.log(`job ${jobId}: could not remove image ${id}: ${(err as Error)?.message ?? String(err)}`));
    }
  }

  private finishWithError(job: JobRecord, cur: RunningJob, e: unknown): void {
    const now = new Date().toISOString();
    const progress = cur.progress ?? undefined;
    if (e instanceof GenerationAborted && !cur.cancelRequested && this.stopping) {
      try {
        this.store.requeue(job.id);
      } catch (err) {
        this.opts.log(`could not put job ${job.id} back in the queue (${(err as Error)?.message ?? String(err)}); the next start runs it again`);
      }
      return;
    }
    if (e instanceof GenerationAborted) {
      const message = progress ? `cancelled at step ${progress.step} of ${progress.steps}` : "cancelled before the first step";
      this.finish(job.id, { state: "cancelled", error: message, finishedAt: now, progress, event: { event: "cancelled", data: { message } } });
      return;
    }
    // Our errors carry a message that says what to do; anything else is a bug, reported as such.
    const message = e instanceof DiffuseError ? e.message : `internal error: ${(e as Error)?.message ?? String(e)}`;
    if (!(e instanceof DiffuseError)) this.opts.log(`job ${job.id} failed: ${(e as Error)?.stack ?? String(e)}`);
    this.finish(job.id, { state: "failed", error: message, finishedAt: now, progress, event: { event: "error", data: { message } } });
  }

  /**
   * Records a failed or cancelled job and tells its listeners. When the database cannot take it (a full disk)
   * the outcome is kept and the loop writes it before anything else; clients see it meanwhile.
   */
  private finish(id: string, o: UnsavedOutcome): void {
    try {
      this.store.markFinished(id, o.state, o.error, o.finishedAt, o.progress);
    } catch {
      this.unsaved.set(id, o);
    }
    this.emit(id, o.event);
  }

  private onStep(cur: RunningJob, e: WorkerStepEvent): void {
    const base = { step: e.step, steps: e.steps, batch: e.batch, batches: e.batches };
    // The worker makes a preview at most every previewIntervalMs (and at each batch's last step); a step event
    // carries it only for someone watching.
    if (!e.previewing || !this.events.hasListeners(cur.id)) {
      this.emit(cur.id, { event: "step", data: base });
      return;
    }
    // The pipeline holds previews to the safety checker and policy of the final images; a withheld one is said
    // so, a failed one is left out.
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
    return { id: img.id, url: this.opts.imageUrl(img.id), seed: seedToJson(img.seed), infotext: img.infotext };
  }
}
