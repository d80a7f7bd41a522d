import { DiffuseError, InternalError } from "../errors.js";
import type { StepPreview } from "../pipeline/params.js";
import { GenerationAborted } from "../pipeline/generation-aborted.js";
import { ControlBlock, type LiveProgress } from "../worker/control-block.js";
import type { ModelDescription } from "../worker/model-host.js";
import type { WorkerStepEvent } from "../worker/pipeline-worker.js";
import { cancelMessage } from "../worker/queue-protocol.js";
import type { JobEvents } from "./events.js";
import type { ImageFiles } from "./image-files.js";
import { generateParamsOf } from "./job-params.js";
import { JobQueue, type CancelOutcome, type LiveJob, type QueueOptions, type ServedModel } from "./job-queue.js";
import type { ModelChoice, ModelStatus, ServedModels } from "./served-models.js";
import type { JobRecord, JobStore } from "./store.js";

/** The job being generated now, with what only memory knows about it. */
export class RunningJob implements LiveJob {
  readonly startedMs = performance.now();
  readonly abort = new AbortController();
  /** Cancel flag and live progress, shared with the worker thread that runs the job. */
  readonly control = new ControlBlock();
  cancelRequested = false;
  latestPreview: StepPreview | undefined;

  constructor(
    readonly id: string,
    readonly seq: number,
    readonly startedAt: string,
  ) {}

  get skipPending(): boolean {
    return this.control.skipPending;
  }

  /** The last step the worker finished, read from shared memory: never behind a message still on its way. */
  get progress(): LiveProgress | null {
    return this.control.progress();
  }
}

/** How often a queue held up by its database (a full disk) tries again. */
const STALLED_RETRY_MS = 1000;

/**
 * The embedded backend (the default: nothing to install): FIFO of jobs for the models this process loads (the
 * served one, one switched away from while its jobs finish, one a job names), one generation at a time (each is
 * CPU-bound; two at once only makes both slower). The database is the queue: the loop always takes the oldest
 * queued row of those models, so jobs accepted before a crash are found again after it, in order, and jobs queued
 * for a model before a switch run on it before the new model's.
 */
export class EmbeddedQueue extends JobQueue {
  private current: RunningJob | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private worker: Promise<void> | undefined;
  /** Unload requests (A1111's unload-checkpoint), done by the loop between jobs, so none runs on a closed model. */
  private unloads: (() => void)[] = [];

  constructor(
    store: JobStore,
    files: ImageFiles,
    events: JobEvents,
    override readonly model: ServedModels,
    opts: QueueOptions,
  ) {
    super(store, files, events, model, opts);
  }

  start(): void {
    this.worker ??= this.loop();
  }

  liveJobs(): LiveJob[] {
    return this.current ? [this.current] : [];
  }

  override modelFor(choice: ModelChoice | undefined): ServedModel {
    if (choice === undefined) return this.model;
    // Opened (and loaded when described) for the job to come; the loop closes it once no job needs it.
    return this.model.host(choice);
  }

  override async switchModel(choice: ModelChoice): Promise<ModelDescription> {
    try {
      return await this.model.switchTo(choice);
    } finally {
      // Jobs of the new model may run now, in their turn; a model no job needs any more is closed.
      this.wake?.();
    }
  }

  override modelStatus(name: string): ModelStatus {
    return this.model.status(name);
  }

  override skipRunning(): boolean {
    this.current?.control.skipCurrent();
    return this.current !== undefined;
  }

  override unloadModel(): Promise<void> {
    return new Promise((resolve) => {
      this.unloads.push(resolve);
      this.wake?.();
    });
  }

  /** Models with open pipelines: the served one, one switched away from, those jobs name. */
  protected override runnableModels(): readonly string[] {
    return this.model.names();
  }

  /** A job accepted for a model that is not open yet (queued before a restart) can run once it is opened. */
  adopt(choice: ModelChoice): void {
    this.model.host(choice);
    this.wake?.();
  }

  protected dispatch(job: JobRecord): void {
    this.model.reopen(job.model);
    this.wake?.();
  }

  async cancel(id: string): Promise<CancelOutcome> {
    const cur = this.current;
    if (cur?.id === id) {
      cur.cancelRequested = true;
      cur.abort.abort();
      return { kind: "cancelling", finished: this.whenFinished(id) };
    }
    if (this.cancelQueued(id)) return { kind: "cancelled" };
    return this.notCancellable(id);
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
    await this.unloadRequested();
    try {
      this.saveOutcomes();
    } catch (e) {
      // Still "running" in the database: the next start takes it for interrupted and runs it again.
      this.opts.log(
        `could not record the outcome of job(s) ${this.unsavedIds.join(", ")}: ${(e as Error)?.message ?? String(e)}`,
      );
    }
    await this.flushEvents();
  }

  private async loop(): Promise<void> {
    /** Why the queue is held up (a full disk), logged when it starts and when it ends rather than at every try. */
    let stalled: string | undefined;
    while (!this.stopping) {
      // Pipelines of models switched away from, or opened for a job, are closed once no job needs them. Here,
      // before the look for a job: between that look and the sleep nothing may wait, or a wake-up is lost.
      await this.releaseUnneeded();
      await this.unloadRequested();
      if (this.stopping) break;
      let next: JobRecord | undefined;
      const startedAt = new Date().toISOString();
      try {
        this.saveOutcomes();
        next = this.store.nextQueued(this.model.names());
        if (next) this.store.markRunning(next.id, startedAt);
      } catch (e) {
        // The database cannot be written (a full disk, an I/O error): the job stays queued, nothing is lost,
        // and the queue tries again until it can go on, without a restart.
        const reason = e instanceof DiffuseError ? e.message : ((e as Error)?.stack ?? String(e));
        if (reason !== stalled)
          this.opts.log(`the queue is waiting: ${reason}; trying again every ${STALLED_RETRY_MS / 1000} s`);
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

  private async unloadRequested(): Promise<void> {
    if (this.unloads.length === 0) return;
    const waiting = this.unloads;
    this.unloads = [];
    await this.model
      .unloadServed()
      .catch((e: unknown) => this.opts.log(`could not unload the model: ${(e as Error)?.message ?? String(e)}`));
    for (const done of waiting) done();
  }

  private async releaseUnneeded(): Promise<void> {
    await this.model
      .release((name) => this.store.hasUnfinished(name))
      .catch((e: unknown) => this.opts.log(`could not close a model: ${(e as Error)?.message ?? String(e)}`));
  }

  /** Until a submit or stop wakes the loop, or `ms` pass. */
  private async sleep(ms: number | undefined): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      if (ms !== undefined) timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.wake = undefined;
  }

  /** Runs a job already marked running; never throws: every way out records an outcome or keeps it for later. */
  private async run(job: JobRecord, startedAt: string): Promise<void> {
    const cur = new RunningJob(job.id, job.seq, startedAt);
    this.current = cur;
    try {
      this.recordRunning(job.id, startedAt);
      // Open: the loop takes only jobs of open models, and closes models only between jobs.
      const host = this.model.opened(job.model);
      if (!host) throw new InternalError(`job ${job.id} was taken for model "${job.model}", which is not open`);
      const pipe = await host.get();
      const uploads = this.store.uploads(job.id);
      const result = await pipe.generate({
        ...generateParamsOf(job.params, uploads, this.opts.controlnetDirs, this.opts.vaeDirs),
        // The robust watermark carries the job's id, so a detected mark leads back to this job's history entry.
        jobId: job.id,
        signal: cur.abort.signal,
        control: cur.control,
        // Made in the worker at the interval whoever watches (SSE, A1111's progress polls) or not: a preview costs
        // a small PNG encode there, and a poll is then answered at once with the newest one.
        previewIntervalMs: this.opts.previewIntervalMs,
        onPreview: (p) => (cur.latestPreview = p),
        onStep: (e) => this.onStep(cur, e),
      });
      const images = await Promise.all(
        result.images.map(async (img) => ({ png: await img.png(), seed: img.seed, infotext: img.infotext })),
      );
      const steps = cur.progress ?? { step: 0, steps: 0 };
      await this.recordDone(job, images, result.parameters, { step: steps.step, steps: steps.steps });
    } catch (e) {
      this.finishWithError(job, cur, e);
    } finally {
      this.current = undefined;
    }
  }

  private finishWithError(job: JobRecord, cur: RunningJob, e: unknown): void {
    const progress = cur.progress ?? undefined;
    if (e instanceof GenerationAborted && !cur.cancelRequested && this.stopping) {
      try {
        this.store.requeue(job.id);
      } catch (err) {
        this.opts.log(
          `could not put job ${job.id} back in the queue (${(err as Error)?.message ?? String(err)}); the next start runs it again`,
        );
      }
      return;
    }
    if (e instanceof GenerationAborted) this.recordCancelled(job.id, cancelMessage(progress), progress);
    else this.recordFailure(job.id, e, progress);
  }

  private onStep(cur: RunningJob, e: WorkerStepEvent): void {
    // The worker makes a preview at most every previewIntervalMs (and at each batch's last step); a step event
    // carries it only for someone watching.
    this.publishStep(cur.id, e, e.previewing ? e.preview() : undefined);
  }
}
