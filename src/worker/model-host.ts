import type { LoadOptions } from "../pipeline/load-pipeline.js";
import { modelDisplayName } from "../pipeline/output-metadata.js";
import type { LoadedModel } from "./messages.js";
import { PipelineWorker } from "./pipeline-worker.js";

export type { CheckpointDescription } from "./messages.js";

/** What the server reports about a model: the fields of its listings and A1111's sd-models. */
export type ModelDescription = LoadedModel;

/**
 * Owns the one loaded pipeline, in a worker thread: loading, graph building and every network run happen there,
 * so status requests are answered while a job runs. Loading starts when the server starts, so the first job does
 * not pay for it; a failed load is remembered (every job then fails with its message) rather than retried in a
 * loop. A thread that died (it took its generation down with it) is started again for the next job.
 */
export class ModelHost {
  readonly name: string;
  private loading: Promise<PipelineWorker> | undefined;
  private loaded: PipelineWorker | undefined;
  private failure: string | undefined;

  /** `name`: what jobs and listings call it (default: the pipeline's own naming of the path). */
  constructor(
    readonly path: string,
    private readonly options: LoadOptions = {},
    name?: string,
  ) {
    this.name = name ?? modelNameFor(path);
  }

  /** Starts loading without waiting; errors surface on the next `get()`. */
  preload(): void {
    this.get().catch(() => undefined);
  }

  get(): Promise<PipelineWorker> {
    if (this.loaded && !this.loaded.alive) {
      this.loading = undefined;
      this.loaded = undefined;
    }
    this.loading ??= PipelineWorker.start(this.path, this.options).then(
      (p) => (this.loaded = p),
      (e: unknown) => {
        this.failure = (e as Error)?.message ?? String(e);
        throw e;
      },
    );
    return this.loading;
  }

  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  /** Why the load failed, once it has. */
  get loadError(): string | undefined {
    return this.failure;
  }

  /** Whether a load was started (it may still run, have failed, or be done). */
  get isStarted(): boolean {
    return this.loading !== undefined;
  }

  async describe(): Promise<ModelDescription> {
    const { model } = await this.get();
    return { ...model, name: this.name, path: this.path };
  }

  async close(): Promise<void> {
    const p = this.loading;
    this.loading = undefined;
    this.loaded = undefined;
    if (p) await (await p.catch(() => undefined))?.close();
  }
}

/**
 * The pipeline's own naming (file name without .safetensors, the folder's name, a Hugging Face snapshot's
 * repository), known before loading: the name its images carry is the name its jobs and queue carry.
 */
export function modelNameFor(path: string): string {
  return modelDisplayName(path);
}
