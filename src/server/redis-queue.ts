import { Queue, QueueEvents, QueueEventsProducer, type Job, type JobState } from "bullmq";
import type { StepPreview } from "../pipeline/params.js";
import type { LiveProgress } from "../worker/control-block.js";
import {
  CANCEL_EVENT,
  CANCELLED_PREFIX,
  controlQueueName,
  GENERATE,
  generationQueueName,
  KEY_PREFIX,
  resolvedParameters,
  stepPreview,
  toQueuedGeneration,
  type CancelMessage,
  type GenerationOutput,
  type GenerationProgress,
  type QueuedGeneration,
} from "../worker/queue-protocol.js";
import { CLOSE_WAIT_MS, closeBullmq, within } from "../worker/close-bullmq.js";
import { connectionOptions, type QueueTarget } from "../worker/queue-url.js";
import type { JobEvents } from "./events.js";
import type { ImageFiles } from "./image-files.js";
import { generateParamsOf } from "./job-params.js";
import { isFinal, JobQueue, type CancelOutcome, type LiveJob, type QueueOptions } from "./job-queue.js";
import { RemoteModel } from "./remote-model.js";
import type { JobRecord, JobStore, Uploads } from "./store.js";

export interface RedisQueueOptions extends QueueOptions {
  target: QueueTarget;
  /** How often the store and Redis are compared (outcomes whose event was missed, jobs Redis lost). */
  sweepIntervalMs?: number;
}

/** A job a worker runs, as this server knows it from the queue's events. */
class RemoteJob implements LiveJob {
  readonly startedMs = performance.now();
  readonly abort = new AbortController();
  cancelRequested = false;
  progress: LiveProgress | null = null;
  latestPreview: StepPreview | undefined;

  constructor(
    readonly id: string,
    readonly startedAt: string,
  ) {}
}

/** Each job gets one retry: a worker killed mid-job (bullmq moves it back once it stalls) or an unexpected error. */
const ATTEMPTS = 2;

const DEFAULT_SWEEP_MS = 2000;
/** Every so many sweeps, every unfinished job is compared, not only the running ones. */
const FULL_SWEEP_EVERY = 15;

const WAITING_STATES: ReadonlySet<JobState | "unknown"> = new Set([
  "waiting",
  "delayed",
  "prioritized",
  "waiting-children",
]);

const STALLED_TWICE = "job stalled more than allowable limit";

/**
 * The BullMQ backend (`diffuse serve --queue redis://...`): jobs go to the queue of their model, one BullMQ job per
 * history entry with the same id (so adding it again is a no-op), and `diffuse worker` processes anywhere take them.
 * This server loads no model; it keeps the history and the images as the embedded backend does. What bullmq does
 * is left to it: retries (two attempts), stalled-job recovery (the workers' lock and stalled checks), progress
 * (job.updateProgress read through QueueEvents), return values.
 *
 * The store stays the source of truth, and Redis is reconciled with it: an outcome is recorded once (whether its
 * event arrives, or a sweep finds the job finished in Redis after a restart of this server), then the job is
 * removed from Redis; a job accepted here that Redis does not have (its add failed while Redis was down, or Redis
 * lost it) is added again.
 */
export class RedisQueue extends JobQueue {
  private readonly queue: Queue<QueuedGeneration, GenerationOutput>;
  private readonly queueEvents: QueueEvents;
  private readonly control: QueueEventsProducer;
  private readonly remote = new Map<string, RemoteJob>();
  /** Reconciliation runs one at a time: an event's and a sweep's never interleave on the same job. */
  private serial: Promise<void> = Promise.resolve();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeps = 0;
  /** A connection error was seen since the last full sweep: something may have been lost meanwhile. */
  private troubled = true;
  private stopped = false;
  private lastError: string | undefined;
  /** Jobs whose add is on its way to Redis: not missing from it. */
  private readonly adding = new Set<string>();
  /** Finished jobs in Redis that this server's history does not know (another server's?), reported once. */
  private readonly strangers = new Set<string>();

  constructor(
    store: JobStore,
    files: ImageFiles,
    events: JobEvents,
    modelName: string,
    private readonly redisOpts: RedisQueueOptions,
  ) {
    const connection = connectionOptions(redisOpts.target);
    const failFast = connectionOptions(redisOpts.target, { failFast: true });
    const queue = new Queue<QueuedGeneration, GenerationOutput>(generationQueueName(modelName), {
      connection: failFast,
      prefix: KEY_PREFIX,
      // Progress events carry previews and return values carry images: the event stream keeps the newest only.
      streams: { events: { maxLen: 1000 } },
    });
    super(
      store,
      files,
      events,
      new RemoteModel(modelName, () => queue.getBackend().client, redisOpts.target.display),
      redisOpts,
    );
    this.queue = queue;
    this.queueEvents = new QueueEvents(this.queue.name, { connection, prefix: KEY_PREFIX, autorun: false });
    this.control = new QueueEventsProducer(controlQueueName(modelName), { connection: failFast, prefix: KEY_PREFIX });
    this.queue.on("error", (err) => this.reportError(err));
    this.control.on("error", (err: Error) => this.reportError(err));
    this.queueEvents.on("error", (err) => this.reportError(err));
  }

  start(): void {
    const q = this.queueEvents;
    q.on("active", ({ jobId }) => this.reconcileLater(jobId));
    q.on("progress", ({ jobId, data }) => this.onProgress(jobId, data as GenerationProgress));
    q.on("completed", ({ jobId }) => this.reconcileLater(jobId));
    q.on("failed", ({ jobId }) => this.reconcileLater(jobId));
    q.on("stalled", ({ jobId }) => this.reconcileLater(jobId));
    // A retry (after an error, or a stall) puts the job back.
    q.on("waiting", ({ jobId, prev }) => void (prev === "active" && this.reconcileLater(jobId)));
    void q.run().catch((e: unknown) => this.reportError(e as Error));
    const interval = this.redisOpts.sweepIntervalMs ?? DEFAULT_SWEEP_MS;
    this.sweeper = setInterval(() => this.sweep(), interval);
    this.sweeper.unref();
    this.sweep();
  }

  liveJobs(): LiveJob[] {
    return [...this.remote.values()].sort((a, b) => a.startedMs - b.startedMs);
  }

  protected dispatch(job: JobRecord, uploads: Uploads): void {
    void this.add(job, uploads);
  }

  async cancel(id: string): Promise<CancelOutcome> {
    const local = this.store.get(id);
    if (!local || isFinal(local)) return this.notCancellable(id);
    if (!this.remote.has(id)) {
      // Still waiting in Redis: removed there, then cancelled here. A job a worker has just taken cannot be
      // removed (it is locked): it is cancelled as a running one.
      try {
        await this.queue.remove(id);
        if ((await this.queue.getJobState(id)) === "unknown" && this.cancelQueued(id)) return { kind: "cancelled" };
      } catch (e) {
        // Redis is unreachable: cancelled here; a worker that takes it later is told to stop (see reconcile).
        this.reportError(e as Error);
        if (this.cancelQueued(id)) return { kind: "cancelled" };
      }
    }
    const local2 = this.store.get(id);
    if (!local2 || isFinal(local2)) return this.notCancellable(id);
    const live = this.remote.get(id) ?? this.track(id, local2.startedAt ?? new Date().toISOString());
    live.cancelRequested = true;
    live.abort.abort();
    await this.publishCancel(id);
    return { kind: "cancelling", finished: this.whenFinished(id) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweeper);
    // A reconciliation waits for Redis; one that cannot finish now is done by the next start.
    await within(this.serial, CLOSE_WAIT_MS);
    await Promise.all([this.queueEvents, this.control, this.queue].map((c) => closeBullmq(c)));
    try {
      this.saveOutcomes();
    } catch (e) {
      this.opts.log(
        `could not record the outcome of job(s) ${this.unsavedIds.join(", ")}: ${(e as Error)?.message ?? String(e)}`,
      );
    }
    await this.flushEvents();
  }

  /** Adds a job to Redis under its own id (a no-op when it is there already). Failures are left to the sweep. */
  private async add(job: JobRecord, uploads: Uploads): Promise<void> {
    this.adding.add(job.id);
    try {
      const data = toQueuedGeneration(
        generateParamsOf(job.params, uploads, this.opts.controlnetDirs, this.opts.vaeDirs),
        this.opts.previewIntervalMs,
      );
      await this.queue.add(GENERATE, data, {
        jobId: job.id,
        attempts: ATTEMPTS,
        removeOnComplete: false,
        removeOnFail: false,
      });
    } catch (e) {
      this.troubled = true;
      this.reportError(e as Error);
    } finally {
      this.adding.delete(job.id);
    }
  }

  private reconcileLater(id: string): void {
    this.serial = this.serial
      .then(() => this.reconcile(id))
      .catch((e: unknown) => {
        this.troubled = true;
        this.reportError(e as Error);
      });
  }

  /**
   * Brings the history in line with what Redis says of a job: a finished job's outcome is recorded (once) and the
   * job removed from Redis; a running one is marked running; one back in the queue (a retry) is marked queued; one
   * Redis does not have is added again.
   */
  private async reconcile(id: string, known?: JobState | "unknown"): Promise<void> {
    const local = this.store.get(id);
    if (!local) return;
    const state = known ?? (await this.queue.getJobState(id));
    if (isFinal(local)) {
      this.remote.delete(id);
      if (state === "completed")
        this.opts.log(`job ${id} was delivered again; its first outcome (${local.state}) is kept`);
      if (state === "completed" || state === "failed") await this.queue.remove(id);
      // Cancelled here while Redis could not be told, and taken by a worker since: it is stopped there too.
      else if (state === "active" && local.state === "cancelled") await this.publishCancel(id);
      return;
    }
    if (state === "completed" || state === "failed") {
      const job = await this.queue.getJob(id);
      if (!job) return;
      if (state === "completed") await this.recordOutput(local, job.returnvalue);
      else this.recordFailed(local, job);
      this.remote.delete(id);
      await this.queue.remove(id);
      this.notifyPositions();
    } else if (state === "active") {
      this.markRunning(local);
    } else if (WAITING_STATES.has(state)) {
      if (local.state === "running") {
        this.store.requeue(id);
        this.remote.delete(id);
        this.emit(id, { event: "queued", data: { position: this.store.position(local) } });
        this.notifyPositions();
      }
    } else if (state === "unknown" && !this.adding.has(id)) {
      this.opts.log(
        `job ${id} was not in the queue at ${this.redisOpts.target.display} (its add failed, or Redis lost it): queued again`,
      );
      if (local.state === "running") {
        this.store.requeue(id);
        this.remote.delete(id);
      }
      await this.add(local, this.store.uploads(id));
    }
  }

  private async recordOutput(job: JobRecord, out: GenerationOutput): Promise<void> {
    const images = out.images.map((i) => ({
      png: Buffer.from(i.png, "base64"),
      seed: BigInt(i.seed),
      infotext: i.infotext,
    }));
    const recorded = await this.recordDone(job, images, resolvedParameters(out.parameters), out.progress);
    if (!recorded)
      this.opts.log(`job ${job.id} was delivered again (by worker ${out.worker}); its first result is kept`);
  }

  private recordFailed(local: JobRecord, job: Job<QueuedGeneration, GenerationOutput>): void {
    const live = this.remote.get(local.id);
    const progress = live?.progress ?? progressOf(job.progress);
    const reason = job.failedReason || "the worker gave no reason";
    if (reason.startsWith(CANCELLED_PREFIX)) {
      this.recordCancelled(local.id, reason, progress);
    } else if (reason === STALLED_TWICE) {
      this.recordFailure(
        local.id,
        "the workers running this job stopped abruptly (crash or kill) twice, so it was not retried again; check the workers' logs and memory, then submit it again",
        progress,
      );
    } else {
      this.recordFailure(local.id, reason, progress);
    }
  }

  private onProgress(id: string, p: GenerationProgress): void {
    if (typeof p !== "object" || p === null || typeof p.step !== "number") return;
    let live = this.remote.get(id);
    if (!live) {
      // Its "active" event may still be waiting behind a reconciliation: the job runs, as its progress says.
      const local = this.store.get(id);
      if (!local || isFinal(local)) return;
      live = this.markRunning(local);
    }
    live.progress = { step: p.step, steps: p.steps, batch: p.batch, batches: p.batches };
    const preview = p.preview && stepPreview(p.preview);
    if (preview) live.latestPreview = preview;
    this.publishStep(id, live.progress, preview);
  }

  /** A job a worker has taken: running in the history (its listeners told), and followed here. */
  private markRunning(local: JobRecord): RemoteJob {
    const startedAt = local.startedAt ?? new Date().toISOString();
    const live = this.remote.get(local.id) ?? this.track(local.id, startedAt);
    if (local.state === "queued") {
      this.store.markRunning(local.id, startedAt);
      this.recordRunning(local.id, startedAt);
    }
    return live;
  }

  private track(id: string, startedAt: string): RemoteJob {
    const live = new RemoteJob(id, startedAt);
    this.remote.set(id, live);
    return live;
  }

  private async publishCancel(id: string): Promise<void> {
    const message: CancelMessage = { eventName: CANCEL_EVENT, jobId: id };
    await this.control.publishEvent(message).catch((e: unknown) => this.reportError(e as Error));
  }

  /**
   * Compares the store with Redis: every finished job waiting in Redis is recorded; the running jobs are checked
   * each time, every unfinished one after trouble with the connection, at start and now and then.
   */
  private sweep(): void {
    if (this.stopped) return;
    const full = this.troubled || this.sweeps++ % FULL_SWEEP_EVERY === 0;
    this.troubled = false;
    this.serial = this.serial
      .then(async () => {
        const finished = await this.queue.getJobs(["completed", "failed"], 0, 199, true);
        for (const job of finished) {
          if (!job?.id) continue;
          if (!this.store.get(job.id)) {
            if (!this.strangers.has(job.id))
              this.opts.log(`job ${job.id} finished in the queue but is not in this server's history; left there`);
            this.strangers.add(job.id);
            continue;
          }
          await this.reconcile(job.id);
        }
        const unfinished = this.store.unfinished(this.model.name).filter((j) => full || j.state === "running");
        for (const j of unfinished) await this.reconcile(j.id);
        if (this.lastError !== undefined) {
          this.opts.log(`queue ${this.redisOpts.target.display}: connected again`);
          this.lastError = undefined;
        }
      })
      .catch((e: unknown) => {
        this.troubled = true;
        this.reportError(e as Error);
      });
  }

  /** Trouble is logged when it starts, not at every retry; the next sweep that gets through says it is over. */
  private reportError(e: Error): void {
    this.troubled = true;
    if (this.lastError !== undefined) return;
    this.lastError = e?.message ?? String(e);
    this.opts.log(`queue ${this.redisOpts.target.display}: ${this.lastError}; retrying`);
  }
}

function progressOf(p: unknown): { step: number; steps: number } | undefined {
  const g = p as Partial<GenerationProgress> | null;
  return g && typeof g.step === "number" && typeof g.steps === "number" ? { step: g.step, steps: g.steps } : undefined;
}
