/** The public API of diffuse. */
export { loadPipeline, type LoadOptions, type Pipeline } from "./worker/load.js";
export { PipelineWorker, type WorkerGenerateParams, type WorkerStepEvent } from "./worker/pipeline-worker.js";
export { StableDiffusionPipeline } from "./pipeline/stable-diffusion.js";
export type { GenerateResult, GeneratedImage } from "./pipeline/stable-diffusion.js";
export { GenerationAborted } from "./pipeline/generation-aborted.js";
export type { GenerateParams, StepEvent, StepPreview, PreviewSafety, ResolvedParams } from "./pipeline/params.js";
export { openCheckpoint } from "./models/open-checkpoint.js";
export type { Checkpoint } from "./weights/checkpoint.js";
export { listSamplers, findSampler, createScheduler, type Scheduler, type SamplerInfo } from "./schedulers/index.js";
export { TorchGenerator } from "./random/torch-generator.js";
export { MAX_SEED, parseSeed, seedToJson, type SeedInput } from "./random/seed.js";
export { ClipTokenizer } from "./tokenizer/clip-tokenizer.js";
export { buildInfotext, parseInfotext, type Infotext } from "./image/infotext.js";
export { readPngText, writePngText } from "./image/png-text.js";
export { readImageParameters, type ImageParameters } from "./image/image-parameters.js";
export { formatForPath, type ImageFormat } from "./image/output-format.js";
export { DiffuseError, CheckpointError, UnsupportedModelError, InputError, InternalError } from "./errors.js";
