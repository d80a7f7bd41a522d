import { availableParallelism, hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { QueueEvents, UnrecoverableError, Worker, type Job, type QueueEventsListener } from "bullmq";
import { DiffuseError, InternalError } from "../errors.js";
import { GenerationAborted } from "../pipeline/generation-aborted.js";
import type { LoadOptions } from "../pipeline/load-pipeline.js";
import type { StepPreview } from "../pipeline/params.js";
import { ControlBlock, type LiveProgress } from "./control-block.js";
import { ModelHost } from "./model-host.js";
import {
  CANCEL_EVENT,
  cancelMessage,
  controlQueueName,
  fromQueuedGeneration,
  generationQueueName,
  KEY_PREFIX,
  wireParameters,
  wirePreview,
  type CancelMessage,
  type GenerationOutput,
  type GenerationProgress,
  type QueuedGeneration,
} from "./queue-protocol.js";
import { CLOSE_WAIT_MS, closeBullmq, within } from "./close-bullmq.js";
import { connectionOptions, RECONNECT_MAX_MS, type QueueTarget } from "./queue-url.js";
import { HEARTBEAT_MS, publishAdvert, withdrawAdvert, type WorkerAdvert } from "./worker-registry.js";

export interface QueueWorkerOptions {
  target: QueueTarget;
  modelPath: string;
  loadOptions: LoadOptions;
  /** Unique among the workers (default: host, process id and a random suffix). */
  name?: string;
  /**
   * How long a job stays locked to this worker without a renewal (bullmq's lockDuration, renewed at half of it
   * while the job runs). A worker that dies is noticed once it expires: the job goes back to the queue, once.
   */
  lockDurationMs?: number;
  /** How often this worker looks for jobs whose worker died (bullmq's stalledInterval). */
  stalledIntervalMs?: number;
  heartbeatMs?: number;
  log: (line: string) => void;
}

/** bullmq's defaults, kept: a dead worker's job is taken up again within about a minute. */
export const DEFAULT_LOCK_DURATION_MS = 30_000;
export const DEFAULT_STALLED_INTERVAL_MS = 30_000;

type ControlListener = QueueEventsListener & { [CANCEL_EVENT]: (args: CancelMessage, id: string) => void };

/**
 * One `diffuse worker`: takes its model's jobs from the BullMQ queue, one at a time, and runs them in a
 * PipelineWorker thread, so this thread stays free for what bullmq does on its behalf (renewing the job's lock,
 * looking for stalled jobs) however long a step takes. Progress and previews go out with job.updateProgress,
 * the images as the job's return value; a cancellation published by the API server aborts the run at its next
 * step (bullmq's worker.cancelJob and the processor's AbortSignal).
 *
 * Retries are bullmq's: the API server adds each job with two attempts; a worker killed mid-job leaves its lock to
 * expire and the job is moved back to the queue once (maxStalledCount 1), then failed. What would fail the same
 * way again (bad parameters, a prompt refused) fails at once (UnrecoverableError); a model that cannot be loaded
 * on this worker is an ordinary failure, so the retry may find a worker that can.
 */
export class QueueWorker {
  readonly name: string;
  private readonly model: ModelHost;
  private readonly worker: Worker<QueuedGeneration, GenerationOutput>;
  private readonly control: QueueEvents;
  private readonly advert: WorkerAdvert;
  private readonly heartbeat: NodeJS.Timeout;
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;
  private abandoning: Promise<void> | undefined;
  /** The running job, if any: its computation (settled once the images are made or the run failed) and its delivery. */
  private running: RunningJob | undefined;

  constructor(private readonly opts: QueueWorkerOptions) {
    this.name = opts.name ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.model = new ModelHost(opts.modelPath, opts.loadOptions);
    const connection = connectionOptions(opts.target);
    this.advert = {
      name: this.name,
      host: hostname(),
      pid: process.pid,
      model: this.model.name,
      device: deviceOf(opts.loadOptions),
      job: null,
      startedAt: new Date().toISOString(),
    };
    this.worker = new Worker<QueuedGeneration, GenerationOutput>(
      generationQueueName(this.model.name),
      (job, _token, signal) => this.process(job, signal),
      {
        connection,
        prefix: KEY_PREFIX,
        name: this.name,
        concurrency: 1,
        lockDuration: opts.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS,
        stalledInterval: opts.stalledIntervalMs ?? DEFAULT_STALLED_INTERVAL_MS,
        maxStalledCount: 1,
        autorun: false,
      },
    );
    this.control = new QueueEvents(controlQueueName(this.model.name), { connection, prefix: KEY_PREFIX });
    this.worker.on("error", (e) => this.reportError(e));
    // bullmq's word that it recorded the job's outcome in Redis.
    this.worker.on("completed", (job) => this.recorded(job.id));
    this.worker.on("failed", (job) => this.recorded(job?.id));
    this.control.on("error", (e) => this.reportError(e));
    this.control.on<ControlListener>(CANCEL_EVENT, ({ jobId }: CancelMessage) => {
      if (this.worker.cancelJob(jobId, "cancelled by a request to the API server"))
        this.opts.log(`job ${jobId}: cancel requested`);
    });
    const heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
    this.heartbeat = setInterval(() => void this.publish(), heartbeatMs);
    this.heartbeat.unref();
  }

  get modelName(): string {
    return this.model.name;
  }

  /**
   * Loads the model (a failure is kept: every job then fails with its reason), advertises the worker and starts
   * taking jobs. Resolves once the worker is listening, with the load error if there was one.
   */
  async start(): Promise<{ loadError?: string }> {
    // Known as loading meanwhile: requests that need the model's description wait for it.
    await this.publish();
    let loadError: string | undefined;
    try {
      this.advert.loaded = await this.model.describe();
    } catch (e) {
      loadError = (e as Error)?.message ?? String(e);
      this.advert.loadError = loadError;
    }
    void this.worker.run().catch((e: unknown) => this.reportError(e as Error));
    await this.worker.waitUntilReady();
    await this.control.waitUntilReady();
    await this.publish();
    return loadError === undefined ? {} : { loadError };
  }

  /**
   * Stops taking jobs, lets the running job compute to its end and delivers it if Redis takes it within
   * CLOSE_WAIT_MS (when it does not, the job goes back to the queue once its lock expires and runs again elsewhere).
   * Nothing here waits for Redis longer than CLOSE_WAIT_MS at a time: with Redis away, bullmq's own close and the
   * job's progress updates would wait for it for ever (their commands wait out reconnects). `abandon()` stops
   * without waiting for the job, also while a close waits for it.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.heartbeat);
      // Withdrawn first, while the connection is open (the advert expires by itself if Redis cannot be told).
      const withdrawn = this.worker.getBackend().client.then((c) => withdrawAdvert(c, this.name));
      await within(
        withdrawn.catch(() => undefined),
        CLOSE_WAIT_MS,
      );
      // bullmq stops taking jobs at once; its graceful close resolves once the running job is delivered.
      const closed = this.worker.close().catch(() => undefined);
      const job = this.running;
      if (job) {
        // However long the job computes; then its delivery waits for Redis only so long.
        await job.computed;
        const delivered = await within(
          job.recorded.then(() => true),
          CLOSE_WAIT_MS,
        );
        job.givenUp = !delivered;
        if (!delivered)
          this.opts.log(
            `job ${job.id}: not delivered (Redis at ${this.opts.target.display} did not take it within ${CLOSE_WAIT_MS / 1000} s); it goes back to the queue when its lock expires`,
          );
      }
      await Promise.all([
        closeBullmq({ close: () => closed, getBackend: () => this.worker.getBackend() }),
        closeBullmq(this.control),
      ]);
      await this.model.close();
    })();
    return this.closing;
  }

  /**
   * Stops now, for a process about to exit: the running job is cancelled within a step and its thread ended (a
   * process that exits while onnxruntime computes in a thread aborts), and the job is left as it is in Redis: its lock
   * expires and another worker runs it again from the start. Nothing waits for Redis.
   */
  abandon(): Promise<void> {
    this.abandoning ??= (async () => {
      clearInterval(this.heartbeat);
      await this.model.close();
    })();
    return this.abandoning;
  }

  /** Runs a job; `running` describes it meanwhile (a close waits for its computation). */
  private async process(
    job: Job<QueuedGeneration, GenerationOutput>,
    signal: AbortSignal | undefined,
  ): Promise<GenerationOutput> {
    const id = job.id!;
    const started = performance.now();
    const progress = new ProgressSender(job, (e) => this.reportError(e));
    const control = new ControlBlock();
    const computing = this.generate(job, signal, progress, control);
    let delivered = noop;
    const recorded = new Promise<void>((resolve) => (delivered = resolve));
    const running: RunningJob = { id, computed: computing.then(noop, noop), recorded, delivered };
    this.running = running;
    try {
      const output = await computing;
      // What follows (progress, then bullmq's completion) needs Redis, and waits for it while it is away.
      await progress.flush();
      // A close that gave up on delivering it has said so; the flush ended only because the connections were dropped.
      if (!running.givenUp) this.opts.log(`job ${id}: done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
      return output;
    } catch (e) {
      // Cancelled by abandon(): no outcome is recorded (a failure would count as an attempt, or end the job).
      if (this.abandoning) return new Promise<never>(() => undefined);
      await progress.flush();
      throw this.failure(id, e, control, signal);
    } finally {
      this.advert.job = null;
      void this.publish();
    }
  }

  private recorded(id: string | undefined): void {
    const job = this.running;
    if (job === undefined || job.id !== id) return;
    this.running = undefined;
    job.delivered();
  }

  /** The job's images, computed in the pipeline's thread (progress and previews are queued on `progress` meanwhile). */
  private async generate(
    job: Job<QueuedGeneration, GenerationOutput>,
    signal: AbortSignal | undefined,
    progress: ProgressSender,
    control: ControlBlock,
  ): Promise<GenerationOutput> {
    const id = job.id!;
    this.opts.log(`job ${id}: started (attempt ${job.attemptsStarted})`);
    this.advert.job = id;
    void this.publish();
    let pipe;
    try {
      pipe = await this.model.get();
    } catch (e) {
      // Not this job's fault, nor necessarily another worker's: retried (once) wherever the queue sends it.
      throw new Error(
        `worker ${this.name} could not load the model ${this.opts.modelPath}: ${(e as Error)?.message ?? String(e)}`,
      );
    }
    const data = job.data;
    const result = await pipe.generate({
      ...fromQueuedGeneration(data),
      // The robust watermark carries the job's id, so a detected mark leads back to its history entry.
      jobId: id,
      signal,
      control,
      previewIntervalMs: data.previewIntervalMs,
      onStep: (e) => progress.step({ step: e.step, steps: e.steps, batch: e.batch, batches: e.batches }),
      onPreview: (p) => progress.preview(p),
    });
    const images = await Promise.all(
      result.images.map(async (img) => ({
        png: (await img.png()).toString("base64"),
        seed: img.seed.toString(),
        infotext: img.infotext,
      })),
    );
    const p = control.progress();
    return {
      images,
      parameters: wireParameters(result.parameters),
      progress: { step: p?.step ?? 0, steps: p?.steps ?? 0 },
      worker: this.name,
    };
  }

  /** The error bullmq records: cancellations and the request's own errors are not retried. */
  private failure(id: string, e: unknown, control: ControlBlock, signal: AbortSignal | undefined): Error {
    if (e instanceof GenerationAborted && signal?.aborted) {
      const message = cancelMessage(control.progress());
      this.opts.log(`job ${id}: ${message}`);
      return new UnrecoverableError(message);
    }
    const message = (e as Error)?.message ?? String(e);
    this.opts.log(`job ${id}: failed: ${message}`);
    if (e instanceof DiffuseError && !(e instanceof InternalError)) return new UnrecoverableError(message);
    return e instanceof Error ? e : new Error(message);
  }

  private async publish(): Promise<void> {
    try {
      await publishAdvert(await this.worker.getBackend().client, this.advert, this.opts.heartbeatMs ?? HEARTBEAT_MS);
      if (this.lastError !== undefined) {
        this.opts.log(`queue ${this.opts.target.display}: connected again`);
        this.lastError = undefined;
      }
    } catch (e) {
      this.reportError(e as Error);
    }
  }

  /**
   * Trouble is logged when it starts, not at every retry; the next heartbeat that gets through says it is over. The
   * clients reconnect by themselves, spaced by connectionOptions' retryStrategy (RECONNECT_MAX_MS at most).
   */
  private reportError(e: Error): void {
    if (this.lastError !== undefined) return;
    this.lastError = e?.message ?? String(e);
    const where = this.opts.target.display;
    this.opts.log(
      isUnreachable(e)
        ? `cannot reach Redis at ${where} (${this.lastError}); trying again every ${RECONNECT_MAX_MS / 1000} s until it answers`
        : `queue ${where}: ${this.lastError}; retrying`,
    );
  }
}

/**
 * Sends a job's progress without holding the generation up: one update in flight at a time, and only the newest
 * waiting behind it (a step overtaken by the next one before it could be sent is skipped, never the last; a preview
 * not sent yet goes with the update that overtakes it).
 */
class ProgressSender {
  /** The last step reported. */
  latest: GenerationProgress | undefined;
  private pending: GenerationProgress | undefined;
  private sending: Promise<void> | undefined;

  constructor(
    private readonly job: Job,
    private readonly onError: (e: Error) => void,
  ) {}

  step(p: LiveProgress): void {
    this.latest = p;
    this.queue(p);
  }

  preview(p: StepPreview): void {
    if (this.latest) this.queue({ ...this.latest, preview: wirePreview(p) });
  }

  async flush(): Promise<void> {
    await this.sending;
  }

  private queue(p: GenerationProgress): void {
    this.pending =
      p.preview === undefined && this.pending?.preview !== undefined ? { ...p, preview: this.pending.preview } : p;
    this.sending ??= this.pump();
  }

  private async pump(): Promise<void> {
    while (this.pending) {
      const p = this.pending;
      this.pending = undefined;
      await this.job.updateProgress(p).catch((e: unknown) => this.onError(e as Error));
    }
    this.sending = undefined;
  }
}

function deviceOf(o: LoadOptions): string {
  const providers = o.executionProviders?.length ? o.executionProviders.join(", ") : "cpu";
  return `${providers} (${o.threads ?? availableParallelism()} threads)`;
}

interface RunningJob {
  id: string;
  computed: Promise<void>;
  /** Resolved by `delivered()`, when bullmq has recorded the job's outcome. */
  recorded: Promise<void>;
  delivered: () => void;
  /** Set by a close that stopped waiting for its delivery. */
  givenUp?: boolean;
}

function noop(): void {}

/** The socket errors of a Redis that is down, restarting or out of reach (as opposed to one that answers with an error). */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

function isUnreachable(e: Error): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return (code !== undefined && UNREACHABLE.has(code)) || /Connection is closed/.test(e?.message ?? "");
}
