import { basename, dirname } from "node:path";
import { loadPipeline, type LoadOptions } from "../pipeline/load-pipeline.js";
import type { ModelFamily } from "../configs/pipeline.js";
import { type StableDiffusionPipeline } from "../pipeline/stable-diffusion.js";

/** A checkpoint as A1111's sd-models lists it. */
export interface CheckpointDescription {
  name: string;
  path: string;
  /** A1111's short hash (10 hex digits) and the full sha256. */
  hash: string;
  sha256: string;
}

/** What the server reports about a model: the fields of its listings and A1111's sd-models. */
export interface ModelDescription extends CheckpointDescription {
  /** sd1, sd2, sdxl or sdxl-refiner (the page shows SDXL's second prompts for sdxl). */
  family: ModelFamily;
  defaultSize: number;
  /** The guidance a request without cfg_scale gets (the model's generation_config.json, LCM's 8.5, else 7). */
  defaultCfgScale: number;
  /** Steps and sampler a request without them gets on our API (the model's, else 20 and Euler a). */
  defaultSteps: number;
  defaultSampler: string;
  /** What the model itself recommends (generation_config.json, LCM), which A1111's API uses over its own 50 Euler steps. */
  recommendedSteps?: number;
  recommendedSampler?: string;
  /** The refiner loaded with the model (serve --refiner), which requests may hand over to. */
  refiner?: CheckpointDescription;
}

/**
 * Owns the one loaded pipeline. Loading starts when the server starts, so the first job does not pay for it;
 * a failed load is remembered (every job then fails with its message) rather than retried in a loop.
 */
export class ModelHost {
  readonly name: string;
  private loading: Promise<StableDiffusionPipeline> | undefined;
  private loaded: StableDiffusionPipeline | undefined;

  constructor(
    readonly path: string,
    private readonly options: LoadOptions = {},
  ) {
    this.name = modelNameFor(path);
  }

  /** Starts loading without waiting; errors surface on the next `get()`. */
  preload(): void {
    this.get().catch(() => undefined);
  }

  get(): Promise<StableDiffusionPipeline> {
    this.loading ??= loadPipeline(this.path, this.options).then((p) => (this.loaded = p));
    return this.loading;
  }

  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  async describe(): Promise<ModelDescription> {
    const p = await this.get();
    const r = p.refiner;
    return {
      name: this.name,
      path: this.path,
      hash: p.modelHash,
      sha256: p.networks.sha256,
      family: p.config.family,
      defaultSize: p.defaultSize,
      defaultCfgScale: p.defaultCfgScale,
      defaultSteps: p.defaultSteps,
      defaultSampler: p.defaultSampler,
      ...(p.recommendedSteps !== undefined ? { recommendedSteps: p.recommendedSteps } : {}),
      ...(p.recommendedSampler !== undefined ? { recommendedSampler: p.recommendedSampler } : {}),
      ...(r ? { refiner: { name: r.identity.name, path: r.checkpoint.path, hash: r.identity.hash, sha256: r.networks.sha256 } } : {}),
    };
  }

  async close(): Promise<void> {
    const p = this.loading;
    this.loading = undefined;
    this.loaded = undefined;
    if (p) await (await p.catch(() => undefined))?.close();
  }
}

/** The pipeline's own naming (file name without .safetensors, or the folder's name), known before loading. */
export function modelNameFor(path: string): string {
  return basename(path).replace(/\.safetensors$/i, "") || basename(dirname(path));
}
