import {
  loadPipeline as loadInThisThread,
  type LoadOptions as PipelineLoadOptions,
} from "../pipeline/load-pipeline.js";
import type { GenerateParams } from "../pipeline/params.js";
import type { GenerateResult, StableDiffusionPipeline } from "../pipeline/stable-diffusion.js";
import { PipelineWorker } from "./pipeline-worker.js";

export interface LoadOptions extends PipelineLoadOptions {
  /**
   * Host the pipeline in a worker thread: loading, graph building and every network run happen there, so the
   * caller's event loop stays free (a server keeps answering while it generates). `generate` is called and
   * answers the same way; images are encoded in the thread (PNG unless `formats` says otherwise).
   */
  worker?: boolean;
}

/** What a caller programs against, whichever thread the pipeline runs in. */
export interface Pipeline {
  generate(params: GenerateParams): Promise<GenerateResult>;
  close(): Promise<void>;
}

/**
 * Loads a checkpoint (single file or diffusers folder) for generation: in this thread by default, in a worker
 * thread with `worker: true` (see PipelineWorker).
 */
export function loadPipeline(path: string, options: LoadOptions & { worker: true }): Promise<PipelineWorker>;
export function loadPipeline(
  path: string,
  options?: LoadOptions & { worker?: false },
): Promise<StableDiffusionPipeline>;
export function loadPipeline(path: string, options?: LoadOptions): Promise<Pipeline>;
export function loadPipeline(path: string, options: LoadOptions = {}): Promise<Pipeline> {
  const { worker, ...rest } = options;
  return worker ? PipelineWorker.start(path, rest) : loadInThisThread(path, rest);
}
