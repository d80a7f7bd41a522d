import { DiffuseError } from "../errors.js";
import type { LoadOptions } from "../pipeline/load-pipeline.js";
import { ModelHost, type ModelDescription } from "../worker/model-host.js";
import type { PipelineWorker } from "../worker/pipeline-worker.js";
import type { ServedModel } from "./job-queue.js";

/** A model by the name jobs record and the file or folder it loads from. */
export interface ModelChoice {
  readonly name: string;
  readonly path: string;
}

/** Where a model stands: serving (new jobs go to it), loading, failed, loaded for jobs that name it, or not loaded. */
export type ModelState = "loaded" | "loading" | "failed" | "unloaded";

export interface ModelStatus {
  readonly state: ModelState;
  /** Why its last load failed, when it did. */
  readonly error?: string;
}

/** A switch whose model could not be loaded: the model served before goes on. */
export class ModelLoadError extends DiffuseError {
  constructor(
    readonly model: string,
    readonly reason: string,
    readonly stillServed: string,
  ) {
    super(`model "${model}" could not be loaded: ${reason}; the server still serves "${stillServed}"`);
  }
}

/**
 * The pipelines of the embedded queue, one worker thread per model: the served one (new jobs go to it), and others
 * while jobs still need them. A switch loads the new model in the background, while the jobs queued for the old one
 * run on it in their turn; the old one is closed once none needs it. A job may also name another known model (A1111's
 * override_settings): it is loaded for it and closed after. A switch to a model that cannot load leaves the old one
 * serving, and says why.
 */
export class ServedModels implements ServedModel {
  private readonly hosts = new Map<string, ModelHost>();
  /** Every model opened so far, by name: one closed while a request was still reading it is opened again for its job. */
  private readonly paths = new Map<string, string>();
  private current: ModelHost;
  private readonly startedPath: string;
  /** Models switched away from whose successor is still loading: kept open, to serve again if it cannot load. */
  private readonly kept = new Set<ModelHost>();
  /** Why a model's last load failed, by name, until it is tried again. */
  private readonly failures = new Map<string, string>();
  /** Load options of models other than the started one: without what describes only the started model. */
  private readonly otherOptions: LoadOptions;

  constructor(
    started: ModelChoice,
    private readonly options: LoadOptions,
    private readonly log: (message: string) => void,
  ) {
    this.startedPath = started.path;
    this.current = this.open(started, options);
    // A config folder, tokenizers, a refiner, a prediction type and TAESD decoders are given for the started
    // model and its family: another model finds its own (or loads without them).
    const {
      config: _c,
      tokenizer: _t,
      tokenizer2: _t2,
      refiner: _r,
      prediction: _p,
      vae: _v,
      previewDecoder: _d,
      ...shared
    } = options;
    this.otherOptions = shared;
  }

  get name(): string {
    return this.current.name;
  }

  get path(): string {
    return this.current.path;
  }

  get isLoaded(): boolean {
    return this.current.isLoaded;
  }

  describe(): Promise<ModelDescription> {
    return this.current.describe();
  }

  /** The served model's pipeline, once loaded. */
  get(): Promise<PipelineWorker> {
    return this.current.get();
  }

  preload(): void {
    this.current.preload();
  }

  /** The models whose jobs can run now: those with a pipeline open (loaded, loading, or failed for jobs to report). */
  names(): string[] {
    return [...this.hosts.keys()];
  }

  /** The pipeline of a model, opened (not yet loaded) when it is not open. */
  host(choice: ModelChoice): ModelHost {
    return this.hosts.get(choice.name) ?? this.open(choice, this.optionsFor(choice.path));
  }

  /**
   * Opens a model a job was just accepted for, if it was closed meanwhile (the loop closes models no job needs, and
   * a request opens its model before its job exists); false when the model was never opened here.
   */
  reopen(name: string): boolean {
    if (this.hosts.has(name)) return true;
    const path = this.paths.get(name);
    if (path === undefined) return false;
    this.open({ name, path }, this.optionsFor(path));
    return true;
  }

  /** An open model's pipeline by name. */
  opened(name: string): ModelHost | undefined {
    return this.hosts.get(name);
  }

  /**
   * Serves another model: new jobs go to it at once, and it loads in the background. Resolves with its description
   * once it has loaded; when it cannot load, the model served before is served again and this rejects with a
   * ModelLoadError that says why (the jobs already sent to it fail with the same reason).
   */
  async switchTo(choice: ModelChoice): Promise<ModelDescription> {
    const previous = this.current;
    const stale = this.hosts.get(choice.name);
    if (stale?.loadError !== undefined) {
      // It failed before: a new switch tries again with a fresh pipeline (jobs still queued for it run on that).
      this.hosts.delete(choice.name);
      void stale.close();
    }
    this.failures.delete(choice.name);
    const next = this.host(choice);
    this.current = next;
    if (next !== previous)
      this.log(
        `switching to model "${next.name}" (${next.path}); jobs queued for "${previous.name}" finish on it first`,
      );
    this.kept.add(previous);
    try {
      return await next.describe();
    } catch (e) {
      const reason = (e as Error)?.message ?? String(e);
      this.failures.set(next.name, reason);
      // Only the switch that made it current takes it back: a later switch has chosen since.
      if (this.current === next && next !== previous) {
        this.current = this.hosts.get(previous.name) ?? previous;
        this.hosts.set(this.current.name, this.current);
      }
      this.log(`model "${next.name}" (${next.path}) could not be loaded: ${reason}; serving "${this.current.name}"`);
      throw new ModelLoadError(next.name, reason, this.current.name);
    } finally {
      this.kept.delete(previous);
    }
  }

  /**
   * Releases the served model's pipeline and its memory (A1111's unload-checkpoint); it stays the served model, and
   * the next job, or `describe()`, loads it again. The caller makes sure no job runs on it meanwhile.
   */
  async unloadServed(): Promise<void> {
    await this.current.close();
  }

  /** How a model stands (see ModelState). */
  status(name: string): ModelStatus {
    const host = this.hosts.get(name);
    const failure = host?.loadError ?? this.failures.get(name);
    if (failure !== undefined) return { state: "failed", error: failure };
    if (!host?.isStarted) return { state: "unloaded" };
    return { state: host.isLoaded ? "loaded" : "loading" };
  }

  /** Closes the pipelines no job needs any more (`needed` says whether one does); the served one stays. */
  async release(needed: (name: string) => boolean): Promise<void> {
    for (const [name, host] of [...this.hosts]) {
      if (host === this.current || this.kept.has(host) || needed(name)) continue;
      this.hosts.delete(name);
      if (host.loadError !== undefined) this.failures.set(name, host.loadError);
      await host.close();
    }
  }

  async close(): Promise<void> {
    const all = [...this.hosts.values()];
    this.hosts.clear();
    await Promise.all(all.map((h) => h.close()));
  }

  /** What describes the started model (its config folder, tokenizers, refiner...) goes with it only. */
  private optionsFor(path: string): LoadOptions {
    return path === this.startedPath ? this.options : this.otherOptions;
  }

  private open(choice: ModelChoice, options: LoadOptions): ModelHost {
    const host = new ModelHost(choice.path, options, choice.name);
    this.hosts.set(choice.name, host);
    this.paths.set(choice.name, choice.path);
    return host;
  }
}
