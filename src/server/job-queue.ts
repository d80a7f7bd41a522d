import { randomUUID } from "node:crypto";
import { DiffuseError } from "../errors.js";
import type { ResolvedParams, StepPreview } from "../pipeline/params.js";
import { PolicyRefusal, type PromptPolicy } from "../responsible/prompt-policy.js";
import { seedToJson } from "../random/seed.js";
import type { LiveProgress } from "../worker/control-block.js";
import type { ModelDescription } from "../worker/model-host.js";
import type { ImageRef, JobParams, JobType, SseEvent } from "./api-types.js";
import type { JobEvents } from "./events.js";
import { HttpError } from "./http-errors.js";
import type { ImageFiles } from "./image-files.js";
import { completedJobParams } from "./job-params.js";
import type { ModelChoice, ModelStatus } from "./served-models.js";
import type { ImageRecord, JobRecord, JobSource, JobStore, Uploads } from "./store.js";

/** A job being generated now, with what only memory knows about it (on this machine or a worker's). */
export interface LiveJob {
  readonly id: string;
  readonly startedAt: string;
  /** performance.now() at start, for ETAs. */
  readonly startedMs: number;
  /** Aborted when the job is to stop: a cancel, or (embedded) a shutdown. */
  readonly abort: AbortController;
  /** Set by a cancel; an abort without it is a shutdown, which puts the job back in the queue. */
  readonly cancelRequested: boolean;
  /** The last step finished. */
  readonly progress: LiveProgress | null;
  /** The newest preview (checked as the pipeline checks previews), for A1111's progress. */
  readonly latestPreview: StepPreview | undefined;
  /** A skip of the current batch was asked for and has not yet taken effect (A1111's state.skipped). */
  readonly skipPending?: boolean;
}

/** The model a server serves: loaded in its own worker thread (embedded) or by the workers of the queue. */
export interface ServedModel {
  readonly name: string;
  /** Where it comes from, for messages: a path, or the queue's workers. */
  readonly path: string;
  readonly isLoaded: boolean;
  /** Waits for the description; rejects with the reason when there is none (it cannot load, no worker has it). */
  describe(): Promise<ModelDescription>;
  preload(): void;
  close(): Promise<void>;
}

export interface SubmitRequest {
  type: JobType;
  params: JobParams;
  source: JobSource;
  uploads: Uploads;
  /** The model to run it on (a known checkpoint's name, see modelFor); absent: the served model. */
  model?: string;
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
  /** Where the ControlNets jobs name (by title) are: the server's --controlnet-dir folders. */
  controlnetDirs?: readonly string[];
  /** Where the VAEs jobs name (sd_vae, by file name) are: the VAE folders under the model roots (vae-files.ts). */
  vaeDirs?: readonly string[];
}

/** An image as a backend hands it over to be recorded: its PNG bytes (metadata and credentials in them). */
export interface FinishedImage {
  png: Uint8Array;
  seed: bigint;
  infotext: string;
}

/** A finished job's outcome that the database could not take yet (a full disk): written as soon as it can be. */
interface UnsavedOutcome {
  state: "failed" | "cancelled";
  error: string;
  finishedAt: string;
  progress: { step: number; steps: number } | undefined;
  /** The event that told listeners; sent again when it lands, for streams opened in between. */
  event: SseEvent;
}

const FINAL = new Set(["done", "failed", "cancelled"]);

export function isFinal(job: Pick<JobRecord, "state">): boolean {
  return FINAL.has(job.state);
}

/**
 * The queue behind both APIs, whichever backend runs the jobs: embedded (this process's worker thread, jobs taken
 * from the SQLite store) or BullMQ on Redis (`diffuse worker` processes anywhere). Either way the API server's
 * store is the history: jobs are accepted into it, their outcomes recorded in it (once, however often a backend
 * reports one), and every change told to the job's listeners in order. A backend says how jobs run and are
 * cancelled.
 */
export abstract class JobQueue {
  /** Events go out in order even when a preview's PNG encode finishes after the next step. */
  private emitting: Promise<void> = Promise.resolve();
  /**
   * Outcomes the database refused (a full disk), by job id. They are written before anything else, so no job stays
   * "running" in the database with nothing running it.
   */
  private readonly unsaved = new Map<string, UnsavedOutcome>();

  constructor(
    protected readonly store: JobStore,
    protected readonly files: ImageFiles,
    protected readonly events: JobEvents,
    readonly model: ServedModel,
    protected readonly opts: QueueOptions,
  ) {}

  /** Starts running (or handing out) the jobs in the store. */
  abstract start(): void;

  /** Stops; what a backend does with a running job is its own (put back in the queue, or left to its worker). */
  abstract stop(): Promise<void>;

  /** The jobs running now, the longest-running first. */
  abstract liveJobs(): LiveJob[];

  /** Cancels a job, queued or running. */
  abstract cancel(id: string): Promise<CancelOutcome>;

  /** Hands a job just accepted into the store to the backend. */
  protected abstract dispatch(job: JobRecord, uploads: Uploads): void;

  /** The job A1111's single-job progress and interrupt speak of: the longest-running. */
  get running(): LiveJob | undefined {
    return this.liveJobs()[0];
  }

  live(id: string): LiveJob | undefined {
    return this.liveJobs().find((j) => j.id === id);
  }

  /** Queues a job; throws PolicyRefusal (after recording the refused job in the history) when the prompt policy matches. */
  async submit(req: SubmitRequest): Promise<JobRecord> {
    const refusal = this.opts.promptPolicy?.checkPrompt(req.params.prompt, req.params.negative_prompt ?? "");
    const refused = refusal ? new PolicyRefusal(refusal) : undefined;
    // Throws StorageFullError (507) when the database cannot take it: nothing was accepted.
    const job = this.store.insert({
      id: randomUUID(),
      model: req.model ?? this.model.name,
      type: req.type,
      params: req.params,
      source: req.source,
      uploads: req.uploads,
      createdAt: new Date().toISOString(),
      refused: refused?.message,
    });
    if (refused) throw refused;
    this.dispatch(job, req.uploads);
    return job;
  }

  position(job: JobRecord): number | null {
    if (job.state !== "queued") return null;
    const models = this.runnableModels();
    return this.store.position(job, models.includes(job.model) ? models : [job.model]);
  }

  queuedCount(): number {
    return this.queuedIds().length;
  }

  /** The queued jobs this backend runs, in the order it runs them. */
  queuedIds(): string[] {
    return this.store.queuedIds(this.runnableModels());
  }

  /**
   * The model a job for `choice` runs on, to read its defaults (native size, steps); the served one without a
   * choice. A backend that serves one model only refuses another with 409.
   */
  modelFor(choice: ModelChoice | undefined): ServedModel {
    if (choice === undefined || choice.name === this.model.name) return this.model;
    throw this.oneModelOnly(`a job for "${choice.name}"`);
  }

  /** Serves another model (see ServedModels.switchTo); a backend that cannot refuses with 409. */
  switchModel(choice: ModelChoice): Promise<ModelDescription> {
    if (choice.name === this.model.name) return this.model.describe();
    return Promise.reject(this.oneModelOnly(`switching to "${choice.name}"`));
  }

  /**
   * Releases the served model's memory until a job or `reloadModel` needs it again (A1111's unload-checkpoint); a
   * backend whose workers load the models refuses with 409.
   */
  unloadModel(): Promise<void> {
    return Promise.reject(this.oneModelOnly("unloading the model"));
  }

  /** Loads the served model (A1111's reload-checkpoint); resolves once it is loaded. */
  async reloadModel(): Promise<void> {
    this.model.preload();
    await this.model.describe();
  }

  /** How a model stands on this backend. */
  modelStatus(name: string): ModelStatus {
    if (name !== this.model.name) return { state: "unloaded" };
    return { state: this.model.isLoaded ? "loaded" : "loading" };
  }

  /** The models whose queued jobs this backend runs (their jobs share one order). */
  protected runnableModels(): readonly string[] {
    return [this.model.name];
  }

  private oneModelOnly(what: string): HttpError {
    return new HttpError(
      409,
      "model_not_switchable",
      `${what} is not possible here: with --queue the workers load the models, and this server sends jobs to the workers of "${this.model.name}"; ` +
        `start diffuse worker --model NAME for another model and diffuse serve --queue ... --model NAME to send it jobs`,
    );
  }

  /**
   * Ends the running job's current batch after its current step and goes on with the next (A1111's skip); false
   * when nothing runs. A backend whose jobs run on other machines refuses with 409.
   */
  skipRunning(): boolean {
    if (!this.running) return false;
    throw new HttpError(
      409,
      "skip_not_supported",
      "skipping an image is not possible with --queue (the job runs on a worker): POST /sdapi/v1/interrupt cancels it",
    );
  }

  /** Cancels whatever runs longest (A1111's interrupt); false when nothing runs. */
  async interruptRunning(): Promise<boolean> {
    const cur = this.running;
    if (!cur) return false;
    await this.cancel(cur.id);
    return true;
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
      } else if (isFinal(job)) {
        unsubscribe();
        resolve(job);
      }
    });
  }

  imageRef(img: Pick<ImageRecord, "id" | "seed" | "infotext">): ImageRef {
    return { id: img.id, url: this.opts.imageUrl(img.id), seed: seedToJson(img.seed), infotext: img.infotext };
  }

  /** Cancels a job if it is still queued in the store, and tells its listeners; false when it was not. */
  protected cancelQueued(id: string): boolean {
    if (!this.store.cancelQueued(id, new Date().toISOString())) return false;
    this.emit(id, { event: "cancelled", data: { message: "cancelled while queued" } });
    this.notifyPositions();
    return true;
  }

  /** What a cancel of a job that neither runs nor waits finds. */
  protected notCancellable(id: string): CancelOutcome {
    const job = this.store.get(id);
    return job ? { kind: "finished", job: this.withUnsavedOutcome(job) } : { kind: "missing" };
  }

  protected recordRunning(id: string, startedAt: string): void {
    this.emit(id, { event: "running", data: { started_at: startedAt } });
    this.notifyPositions();
  }

  /**
   * Records a finished job: its images written, then the history updated in one transaction, then its listeners
   * told. Idempotent: a job whose outcome is already recorded (a second delivery of the same result) is left as it
   * is, and false is returned. On any failure the files written are removed and the error is thrown.
   */
  protected async recordDone(
    job: JobRecord,
    images: readonly FinishedImage[],
    parameters: ResolvedParams,
    progress: { step: number; steps: number },
  ): Promise<boolean> {
    const current = this.store.get(job.id);
    if (!current || isFinal(current)) return false;
    const records: ImageRecord[] = [];
    try {
      for (const [index, img] of images.entries()) {
        const id = randomUUID();
        records.push({ id, jobId: job.id, index, seed: img.seed, infotext: img.infotext });
        await this.files.write(id, img.png);
      }
      const recorded = this.store.markDone(job.id, {
        finishedAt: new Date().toISOString(),
        params: completedJobParams(job.params, parameters),
        images: records,
        stepsDone: progress.step,
        stepsTotal: progress.steps,
      });
      if (!recorded) {
        await this.removeImages(job.id, records);
        return false;
      }
    } catch (e) {
      await this.removeImages(job.id, records);
      throw e;
    }
    this.emit(job.id, { event: "done", data: { images: records.map((i) => this.imageRef(i)) } });
    return true;
  }

  /** Records a failed job; our errors carry a message that says what to do, anything else is a bug, reported as such. */
  protected recordFailure(id: string, e: unknown, progress: { step: number; steps: number } | undefined): void {
    const message =
      e instanceof DiffuseError
        ? e.message
        : typeof e === "string"
          ? e
          : `internal error: ${(e as Error)?.message ?? String(e)}`;
    if (!(e instanceof DiffuseError) && typeof e !== "string")
      this.opts.log(`job ${id} failed: ${(e as Error)?.stack ?? String(e)}`);
    this.finish(id, {
      state: "failed",
      error: message,
      finishedAt: new Date().toISOString(),
      progress,
      event: { event: "error", data: { message } },
    });
  }

  protected recordCancelled(id: string, message: string, progress: { step: number; steps: number } | undefined): void {
    this.finish(id, {
      state: "cancelled",
      error: message,
      finishedAt: new Date().toISOString(),
      progress,
      event: { event: "cancelled", data: { message } },
    });
  }

  /** Writes the outcomes the database refused before; throws (and keeps the rest) while it still cannot. */
  protected saveOutcomes(): void {
    for (const [id, o] of this.unsaved) {
      this.store.markFinished(id, o.state, o.error, o.finishedAt, o.progress);
      this.unsaved.delete(id);
      this.emit(id, o.event);
    }
  }

  protected get unsavedIds(): string[] {
    return [...this.unsaved.keys()];
  }

  /** A step's event; its preview, when there is one for someone watching, is sent with it once it is ready. */
  protected publishStep(id: string, step: LiveProgress, preview: Promise<StepPreview> | StepPreview | undefined): void {
    const base = { step: step.step, steps: step.steps, batch: step.batch, batches: step.batches };
    if (preview === undefined || !this.events.hasListeners(id)) {
      this.emit(id, { event: "step", data: base });
      return;
    }
    // The pipeline holds previews to the safety checker and policy of the final images; a withheld one is said
    // so, a failed one is left out.
    const shown = Promise.resolve(preview).then(
      (p) =>
        p.png
          ? { preview: `data:image/png;base64,${p.png.toString("base64")}` }
          : p.safety === "blocked"
            ? { preview_withheld: "safety" as const }
            : {},
      () => ({}),
    );
    this.inOrder(async () => {
      this.events.publish(id, { event: "step", data: { ...base, ...(await shown) } });
    });
  }

  protected emit(jobId: string, event: SseEvent): void {
    this.inOrder(() => this.events.publish(jobId, event));
  }

  /** Resolves once every event so far has gone out. */
  protected flushEvents(): Promise<void> {
    return this.emitting;
  }

  /** Tells listeners of queued jobs their new place after the queue moved. */
  protected notifyPositions(): void {
    const watched = new Set(this.events.subscribedJobIds());
    if (watched.size === 0) return;
    this.queuedIds().forEach((id, position) => {
      if (watched.has(id)) this.emit(id, { event: "queued", data: { position } });
    });
  }

  /**
   * Records a failed or cancelled job and tells its listeners. When the database cannot take it (a full disk)
   * the outcome is kept and written before anything else; clients see it meanwhile.
   */
  private finish(id: string, o: UnsavedOutcome): void {
    try {
      this.store.markFinished(id, o.state, o.error, o.finishedAt, o.progress);
    } catch {
      this.unsaved.set(id, o);
    }
    this.emit(id, o.event);
  }

  /** Images of a job that ends without them: no file stays behind that the history does not know. */
  private async removeImages(jobId: string, images: readonly Pick<ImageRecord, "id">[]): Promise<void> {
    for (const { id } of images) {
      await this.files
        .remove(id)
        .catch((err: unknown) =>
          this.opts.log(`job ${jobId}: could not remove image ${id}: ${(err as Error)?.message ?? String(err)}`),
        );
    }
  }

  private inOrder(deliver: () => void | Promise<void>): void {
    this.emitting = this.emitting.then(deliver).catch((err: unknown) => {
      this.opts.log(`event listener failed: ${(err as Error)?.stack ?? String(err)}`);
    });
  }
}
