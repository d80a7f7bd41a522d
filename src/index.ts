/** The public API of diffuse. */
export { loadPipeline, type LoadOptions, type Pipeline } from "./worker/load.js";
/** The small model embedded in the package (models/tiny-shapes), which the CLI uses without --model. */
export { defaultModelPath, embeddedControlNetPath, isDefaultModel } from "./default-model.js";
export { parsePrecision, PRECISIONS, type Precision } from "./models/precision.js";
/** int8 calibration a model folder ships (diffuse calibrate writes it; an int8 load reads it before measuring). */
export {
  exportInt8Calibration,
  type CalibrationExport,
  type CalibrationExportOptions,
} from "./pipeline/int8-calibration-export.js";
export { SHIPPED_CALIBRATION_FILE, SINGLE_FILE_SUFFIX } from "./pipeline/int8-shipped-calibration.js";
export { PipelineWorker, type WorkerGenerateParams, type WorkerStepEvent } from "./worker/pipeline-worker.js";
export { StableDiffusionPipeline } from "./pipeline/stable-diffusion.js";
export type { GenerateResult, GeneratedImage } from "./pipeline/stable-diffusion.js";
export { GenerationAborted } from "./pipeline/generation-aborted.js";
export type {
  GenerateParams,
  LoraRequest,
  StepEvent,
  StepPreview,
  PreviewSafety,
  ResolvedParams,
  ControlNetUnit,
  ControlResizeMode,
  ResolvedControlUnit,
  HiresParams,
  ResolvedHires,
  InpaintingFill,
  InpaintOptions,
} from "./pipeline/params.js";
export type { SamplerKnobs } from "./pipeline/sampler-knobs.js";
export { requestFromInfotext } from "./pipeline/infotext-request.js";
/** AUTOMATIC1111's X/Y/Z plot: axes, their value syntax, the cells, and the grid image. */
export {
  planXyzPlot,
  runXyzPlot,
  gridInfotext,
  MAX_XYZ_CELLS,
  type AxisLetter,
  type XyzAxisRequest,
  type XyzPlotRequest,
  type XyzPlotAxis,
  type XyzPlannedCell,
  type XyzPlan,
  type XyzRunOptions,
} from "./pipeline/xyz-plot.js";
export {
  XYZ_AXES,
  findXyzAxis,
  type XyzAxis,
  type XyzAxisId,
  type XyzCell,
  type XyzValue,
} from "./pipeline/xyz-axes.js";
export { composeGrid, type GridLabels, type GridOptions } from "./image/grid-image.js";
export { hiresUpscalerNames, type PixelUpscaler } from "./pipeline/hires-upscalers.js";
export type { EmbeddingRequest } from "./pipeline/textual-inversions.js";
export { defaultAdapterFolders } from "./pipeline/adapter-folder.js";
export { ControlNetModel } from "./pipeline/controlnet-model.js";
export { T2IAdapterModel } from "./pipeline/t2i-adapter-model.js";
export { PREPROCESSORS, findPreprocessor } from "./control/preprocessors.js";
export type { Preprocessor } from "./control/preprocessor.js";
export { openCheckpoint } from "./models/open-checkpoint.js";
export type { Checkpoint, ComponentInfo, SingleFileSurvey } from "./weights/checkpoint.js";
export { surveySingleFile } from "./weights/checkpoint.js";
export { checkpointSha256 } from "./weights/checkpoint-hash.js";
export { shortHash } from "./weights/hash.js";
export type { PredictionType } from "./configs/pipeline.js";
export {
  listSamplers,
  findSampler,
  createScheduler,
  listScheduleTypes,
  findScheduleType,
  resolveSamplerSchedule,
  type Scheduler,
  type SamplerInfo,
  type SchedulerOptions,
  type ScheduleType,
  type ScheduleTypeInfo,
} from "./schedulers/index.js";
export { TorchGenerator } from "./random/torch-generator.js";
export { MAX_SEED, parseSeed, RANDOM_SEED, randomSeed, seedToJson, type SeedInput } from "./random/seed.js";
export { ClipTokenizer } from "./tokenizer/clip-tokenizer.js";
export { buildInfotext, parseInfotext, splitInfotext, type Infotext } from "./image/infotext.js";
export { decodeImage, readImageFile, type ImageSource, type RgbImage } from "./image/codec.js";
export { readPngText, writePngText } from "./image/png-text.js";
export { readImageParameters, type ImageParameters } from "./image/image-parameters.js";
export { formatForPath, IMAGE_FORMATS, type ImageFormat } from "./image/output-format.js";
export { pull, type PullOptions, type PullResult, type FileProgress } from "./hub/pull.js";
export { listModels, type ListedModel, type ListOptions, type ModelSource } from "./hub/list-models.js";
export { resolveModelPath, type ResolveOptions } from "./hub/resolve-model.js";
export { CATALOGUE, catalogueEntry, type CatalogueEntry } from "./hub/catalogue.js";
export { formatLicense, type LicenseNotice } from "./hub/licenses.js";
export type { StoreOptions } from "./hub/store-settings.js";
export type { ModelKind, ModelFamilyLabel } from "./hub/model-kind.js";
export {
  DiffuseError,
  CheckpointError,
  UnsupportedModelError,
  InputError,
  InternalError,
  HubError,
  LicenseNotAcceptedError,
} from "./errors.js";
export { UpscalerRegistry, type UpscalerEntry } from "./upscale/upscalers.js";
export type { Upscaler } from "./upscale/upscaler.js";
export type { UpscalerSearch } from "./upscale/upscaler-folders.js";
export { TorchFile } from "./weights/torch-pickle.js";
export { SAFETY_POLICIES, type SafetyPolicy } from "./responsible/safety-checker.js";
export { detectWatermark, type WatermarkReport } from "./responsible/watermark/detect.js";
export { DEFAULT_TILES } from "./upscale/tiles.js";
// Not exported yet: postprocessUpscale (upscale/postprocess.ts), whose request takes a ProvenanceSigner, and the
// provenance module (verifyImage, signerConfigFromEnv, canCarryCredentials): their C2PA library types need
// Float16Array (lib es2025), and the public types must compile in a strict consumer on ES2022. The CLI imports them
// directly (test/cli/public-api-imports.test.ts lists why).
export {
  checkMemory,
  duration,
  estimateGeneration,
  gib,
  machineMemoryLimit,
  type GenerationEstimate,
  type ModelProfile,
} from "./pipeline/generation-estimate.js";
