import { existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import sharp from "sharp";
import { CheckpointError, InputError, InternalError } from "../errors.js";
import type { RgbImage } from "../image/codec.js";
import { visionConfigFromTransformers, type VisionConfig } from "../configs/vision.js";
import { buildSafetyChecker, safetyLayout, SAFETY_IO } from "../models/safety-checker.js";
import { visionConfigFromWeights } from "../weights/detect-clip-vision.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";
import { serializeGraph } from "../onnx/serialize.js";
import { Session } from "../runtime/session.js";
import { resizeBicubic } from "./safety/bicubic.js";
import { fileWeightSource } from "../weights/file-source.js";
import { SafetensorsFile } from "../weights/safetensors.js";

/**
 * The Stable Diffusion safety checker (diffusers' StableDiffusionSafetyChecker, as the original release
 * shipped it): a CLIP ViT-L/14 image embedding compared by cosine similarity with 17 "concept" and 3
 * "special care" embeddings, each with its own threshold, stored as weights in the checkpoint.
 */

/** What happens to an image the checker flags. */
export type SafetyPolicy = "block" | "blur" | "flag";
export const SAFETY_POLICIES: readonly SafetyPolicy[] = ["block", "blur", "flag"];
/** The reference replaces flagged images with black. */
export const DEFAULT_SAFETY_POLICY: SafetyPolicy = "block";

export interface SafetyResult {
  /** The reference's `has_nsfw_concepts` for this image: at least one concept score above 0. */
  nsfw: boolean;
  /** Per concept: round(cos - threshold + adjustment, 3); > 0 means the concept fired. */
  conceptScores: number[];
  /** Per special-care concept, the same score (with the adjustment in force when it was computed, as the reference does). */
  specialScores: number[];
  /** Indices of the concepts that fired. */
  badConcepts: number[];
  /** Indices of the special-care concepts that fired (each raises the concept thresholds' margin by 0.01). */
  specialCare: number[];
}

/** What the policy did to one image. */
export interface PolicyOutcome {
  image: RgbImage;
  nsfw: boolean;
  action: "none" | "blocked" | "blurred" | "flagged";
}

/** CLIPImageProcessor's settings (preprocessor_config.json of the model's feature_extractor/). */
export interface ClipPreprocessConfig {
  shortestEdge: number;
  cropHeight: number;
  cropWidth: number;
  rescaleFactor: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** transformers' CLIPImageProcessor defaults, which Stable Diffusion's feature_extractor/ repeats. */
export const CLIP_PREPROCESS: ClipPreprocessConfig = {
  shortestEdge: 224,
  cropHeight: 224,
  cropWidth: 224,
  rescaleFactor: 1 / 255,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

type Json = Record<string, unknown>;

/** Parses a preprocessor_config.json. Only bicubic resizing (PIL resample 3) with resize, crop and normalise on is supported. */
export function preprocessConfigFromJson(json: Json, origin = "preprocessor_config.json"): ClipPreprocessConfig {
  for (const flag of ["do_resize", "do_center_crop", "do_rescale", "do_normalize"]) {
    if (json[flag] === false)
      throw new CheckpointError(
        `${origin}: ${flag} is false; the safety checker expects CLIP's standard pre-processing (resize, centre crop, rescale, normalise)`,
      );
  }
  if (json.resample !== undefined && Number(json.resample) !== 3) {
    throw new CheckpointError(
      `${origin}: resample ${String(json.resample)} is not bicubic (3); only CLIP's bicubic resize is implemented`,
    );
  }
  const size = json.size as Json | number | undefined;
  const crop = json.crop_size as Json | number | undefined;
  const shortestEdge = typeof size === "number" ? size : Number(size?.shortest_edge ?? CLIP_PREPROCESS.shortestEdge);
  const cropHeight = typeof crop === "number" ? crop : Number(crop?.height ?? CLIP_PREPROCESS.cropHeight);
  const cropWidth = typeof crop === "number" ? crop : Number(crop?.width ?? CLIP_PREPROCESS.cropWidth);
  const triple = (v: unknown, fallback: [number, number, number], what: string): [number, number, number] => {
    if (v === undefined) return fallback;
    if (!Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== "number"))
      throw new CheckpointError(`${origin}: ${what} must be three numbers`);
    return [v[0], v[1], v[2]];
  };
  const config: ClipPreprocessConfig = {
    shortestEdge,
    cropHeight,
    cropWidth,
    rescaleFactor: Number(json.rescale_factor ?? CLIP_PREPROCESS.rescaleFactor),
    mean: triple(json.image_mean, CLIP_PREPROCESS.mean, "image_mean"),
    std: triple(json.image_std, CLIP_PREPROCESS.std, "image_std"),
  };
  if (![shortestEdge, cropHeight, cropWidth].every((n) => Number.isInteger(n) && n > 0)) {
    throw new CheckpointError(`${origin}: size/crop_size must be positive whole numbers of pixels`);
  }
  return config;
}

/** The size CLIPImageProcessor resizes to: shortest edge to `edge`, the other side scaled and truncated (Python's int()). */
export function resizeTarget(width: number, height: number, edge: number): { width: number; height: number } {
  if (width <= height) return { width: edge, height: Math.floor((edge * height) / width) };
  return { width: Math.floor((edge * width) / height), height: edge };
}

/** How the pre-processing resizes: Pillow's bicubic convolution (the reference's numbers), or libvips' via sharp (faster). */
export type ClipResampler = "pillow" | "sharp";

/**
 * CLIPImageProcessor: shortest side to 224 with a bicubic (a = -0.5) filter, centre crop 224x224 (offsets
 * floored as transformers computes them), x/255, then (x - mean) / std per channel. Returns
 * [batch, 3, cropHeight, cropWidth]. The default resampler reproduces Pillow's bicubic resize; "sharp" uses
 * libvips' cubic kernel, which agrees when shrinking but interpolates differently when enlarging (several
 * levels off on noisy images).
 */
export async function preprocessForClip(
  images: readonly RgbImage[],
  config: ClipPreprocessConfig = CLIP_PREPROCESS,
  resampler: ClipResampler = "pillow",
): Promise<Float32Array> {
  const { cropHeight: ch, cropWidth: cw } = config;
  const plane = ch * cw;
  const out = new Float32Array(images.length * 3 * plane);
  // Per channel and byte value: float32 as transformers computes it (rescale in float64 then cast, normalise in float32).
  const tables = [0, 1, 2].map((c) => {
    const t = new Float32Array(256);
    const mean = Math.fround(config.mean[c]!);
    const std = Math.fround(config.std[c]!);
    for (let v = 0; v < 256; v++) t[v] = Math.fround(Math.fround(Math.fround(v * config.rescaleFactor) - mean) / std);
    return t;
  });
  for (let b = 0; b < images.length; b++) {
    const pixels = await resizeAndCrop(images[b]!, config, resampler);
    const base = b * 3 * plane;
    for (let i = 0; i < plane; i++) {
      out[base + i] = tables[0]![pixels[i * 3]!]!;
      out[base + plane + i] = tables[1]![pixels[i * 3 + 1]!]!;
      out[base + 2 * plane + i] = tables[2]![pixels[i * 3 + 2]!]!;
    }
  }
  return out;
}

/** Resize (shortest edge) and centre crop, returning the crop's interleaved RGB bytes. */
async function resizeAndCrop(
  img: RgbImage,
  config: ClipPreprocessConfig,
  resampler: ClipResampler,
): Promise<Uint8Array> {
  checkImage(img);
  const size = resizeTarget(img.width, img.height, config.shortestEdge);
  const { cropHeight: ch, cropWidth: cw } = config;
  if (size.width < cw || size.height < ch) {
    throw new InputError(
      `an image of ${img.width}x${img.height} resizes to ${size.width}x${size.height}, smaller than the safety checker's ${cw}x${ch} crop`,
    );
  }
  const left = Math.floor((size.width - cw) / 2);
  const top = Math.floor((size.height - ch) / 2);
  if (resampler === "pillow") {
    const resized = resizeBicubic(img, size.width, size.height);
    const out = new Uint8Array(cw * ch * 3);
    for (let y = 0; y < ch; y++)
      out.set(
        resized.data.subarray(((top + y) * size.width + left) * 3, ((top + y) * size.width + left + cw) * 3),
        y * cw * 3,
      );
    return out;
  }
  let pipeline = sharp(rawBuffer(img), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (size.width !== img.width || size.height !== img.height)
    pipeline = pipeline.resize(size.width, size.height, { fit: "fill", kernel: "cubic" });
  const { data, info } = await pipeline
    .extract({ left, top, width: cw, height: ch })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== cw || info.height !== ch || info.channels !== 3) {
    throw new InternalError(
      `sharp returned ${info.width}x${info.height}x${info.channels} for the safety checker's ${cw}x${ch}x3 crop`,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Python's round(x, 3) as numpy scalars compute it: rint(x * 1000) / 1000, ties to even. */
export function roundScore(x: number): number {
  const y = x * 1000;
  let r = Math.round(y);
  if (r - y === 0.5 && r % 2 !== 0) r -= 1;
  return r / 1000 + 0; // + 0 turns -0 into 0
}

/**
 * The reference's decision for one image, rule for rule: special-care scores first, in order, each
 * round(cos - threshold + adjustment, 3), where the adjustment becomes 0.01 once one of them is > 0 (so later
 * special scores carry it too); then every concept score with that adjustment; the image is flagged when any
 * concept score is > 0.
 */
export function safetyDecision(
  conceptCos: ArrayLike<number>,
  specialCos: ArrayLike<number>,
  conceptThresholds: ArrayLike<number>,
  specialThresholds: ArrayLike<number>,
): SafetyResult {
  let adjustment = 0;
  const specialScores: number[] = [];
  const specialCare: number[] = [];
  for (let i = 0; i < specialCos.length; i++) {
    const score = roundScore(specialCos[i]! - specialThresholds[i]! + adjustment);
    specialScores.push(score);
    if (score > 0) {
      specialCare.push(i);
      adjustment = 0.01;
    }
  }
  const conceptScores: number[] = [];
  const badConcepts: number[] = [];
  for (let i = 0; i < conceptCos.length; i++) {
    const score = roundScore(conceptCos[i]! - conceptThresholds[i]! + adjustment);
    conceptScores.push(score);
    if (score > 0) badConcepts.push(i);
  }
  return { nsfw: badConcepts.length > 0, conceptScores, specialScores, badConcepts, specialCare };
}

export interface SafetyCheckerOptions {
  /** onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  /** Images per network run (default 4). */
  batchSize?: number;
  /** Pre-processing; by default read from ../feature_extractor/preprocessor_config.json when present, else CLIP's. */
  preprocess?: ClipPreprocessConfig;
}

/** The network's raw outputs for a batch, row-major. */
export interface SafetyEmbeddings {
  batch: number;
  pooled: Float32Array;
  imageEmbeds: Float32Array;
  conceptCos: Float32Array;
  specialCos: Float32Array;
}

const WEIGHT_FILES = ["model.safetensors", "model.fp16.safetensors", "diffusion_pytorch_model.safetensors"];

/**
 * Where a safety checker is for a model: its `safety_checker/` folder when the diffusers folder has one.
 * Returns undefined when there is none (the caller then records "no safety checker" in the outputs' metadata).
 */
export function findSafetyChecker(modelPath: string): string | undefined {
  const dir = existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  const candidate = join(dir, "safety_checker");
  return existsSync(candidate) &&
    statSync(candidate).isDirectory() &&
    WEIGHT_FILES.some((f) => existsSync(join(candidate, f)))
    ? candidate
    : undefined;
}

/** Resolves a user's path to the weight file, its config.json (if any) and the feature extractor config (if any). */
function resolveFiles(path: string): { weights: string; config?: string; preprocessor?: string } {
  if (!existsSync(path)) {
    throw new InputError(
      `safety checker not found at ${path}; pass the safety_checker/ folder of a diffusers model, its model.safetensors, or a model folder that contains safety_checker/`,
    );
  }
  let dir: string;
  let weights: string | undefined;
  if (statSync(path).isDirectory()) {
    dir =
      existsSync(join(path, "safety_checker")) && !WEIGHT_FILES.some((f) => existsSync(join(path, f)))
        ? join(path, "safety_checker")
        : path;
    weights = WEIGHT_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
    if (!weights) {
      const pickle = existsSync(join(dir, "pytorch_model.bin"))
        ? " (pytorch_model.bin is a pickle, never loaded here: use the repository's model.safetensors)"
        : "";
      throw new CheckpointError(
        `${dir}: no ${WEIGHT_FILES.join(" or ")}${pickle}; download the safety checker's safetensors weights`,
      );
    }
  } else {
    weights = path;
    dir = dirname(path);
  }
  const config = join(dir, "config.json");
  // The config beside a weight file describes it only in a folder laid out as diffusers/transformers do.
  const useConfig = existsSync(config) && (statSync(path).isDirectory() || WEIGHT_FILES.includes(basename(weights)));
  const pre = [
    join(dir, "..", "feature_extractor", "preprocessor_config.json"),
    join(dir, "preprocessor_config.json"),
  ].find((f) => existsSync(f));
  return { weights, config: useConfig ? config : undefined, preprocessor: pre };
}

function readJson(path: string): Json {
  return readJsonFile(path, CheckpointError, {
    hint: "restore the file from the model's repository",
    maxBytes: MAX_SIDE_FILE_BYTES,
  }) as Json;
}

/** The safety checker, ready to run: `SafetyChecker.load(path)`, then `check(images)` and `applyPolicy(...)`. */
export class SafetyChecker {
  private constructor(
    private readonly session: Session,
    readonly config: VisionConfig,
    readonly preprocess: ClipPreprocessConfig,
    readonly conceptThresholds: Float32Array,
    readonly specialThresholds: Float32Array,
    readonly origin: string,
    private readonly batchSize: number,
  ) {}

  /**
   * Loads from a diffusers `safety_checker/` folder (config.json + model.safetensors), a model folder that
   * contains one, or a .safetensors file (the architecture then read from the tensors' shapes when no
   * config.json sits beside it). Builds the network as an ONNX graph and opens an onnxruntime session.
   */
  static async load(path: string, opts: SafetyCheckerOptions = {}): Promise<SafetyChecker> {
    const files = resolveFiles(path);
    const file = SafetensorsFile.open(files.weights);
    try {
      const source = fileWeightSource(file);
      const layout = safetyLayout(source);
      const config = files.config
        ? visionConfigFromTransformers(readJson(files.config), files.config)
        : visionConfigFromWeights(layout.tower, layout.projection);
      const projShape = layout.projection.shape("weight");
      if (projShape[0] !== config.projectionDim || projShape[1] !== config.hiddenSize) {
        throw new CheckpointError(
          `${files.weights}: "${layout.projection.path("weight")}" has shape [${projShape.join(",")}], the config says [${config.projectionDim},${config.hiddenSize}]; config.json does not describe these weights`,
        );
      }
      const concepts = layout.root.shape("concept_embeds")[0]!;
      const special = layout.root.shape("special_care_embeds")[0]!;
      const conceptThresholds = layout.root.get("concept_embeds_weights", [concepts]);
      const specialThresholds = layout.root.get("special_care_embeds_weights", [special]);
      const graph = buildSafetyChecker(config, layout, { concepts, special });
      const session = await Session.create(serializeGraph(graph), { threads: opts.threads });
      const preprocess =
        opts.preprocess ??
        (files.preprocessor
          ? preprocessConfigFromJson(readJson(files.preprocessor), files.preprocessor)
          : CLIP_PREPROCESS);
      if (preprocess.cropHeight !== config.imageSize || preprocess.cropWidth !== config.imageSize) {
        throw new CheckpointError(
          `${files.preprocessor ?? "pre-processing"}: crops ${preprocess.cropWidth}x${preprocess.cropHeight} but the vision tower takes ${config.imageSize}x${config.imageSize}`,
        );
      }
      return new SafetyChecker(
        session,
        config,
        preprocess,
        conceptThresholds,
        specialThresholds,
        files.weights,
        Math.max(1, opts.batchSize ?? 4),
      );
    } finally {
      file.close();
    }
  }

  /** Runs the network on pre-processed pixels ([batch, 3, S, S], the reference's `clip_input`). */
  async embed(clipInput: Float32Array, batch: number): Promise<SafetyEmbeddings> {
    const s = this.config.imageSize;
    const per = this.config.numChannels * s * s;
    if (clipInput.length !== batch * per)
      throw new InputError(
        `clip_input has ${clipInput.length} values, expected ${batch}x${this.config.numChannels}x${s}x${s}`,
      );
    const parts: Record<string, Float32Array[]> = { pooled: [], imageEmbeds: [], conceptCos: [], specialCos: [] };
    for (let start = 0; start < batch; start += this.batchSize) {
      const n = Math.min(this.batchSize, batch - start);
      const out = await this.session.run({
        [SAFETY_IO.pixelValues]: {
          data: clipInput.subarray(start * per, (start + n) * per),
          dims: [n, this.config.numChannels, s, s],
        },
      });
      parts.pooled!.push(out[SAFETY_IO.pooled]!.data);
      parts.imageEmbeds!.push(out[SAFETY_IO.imageEmbeds]!.data);
      parts.conceptCos!.push(out[SAFETY_IO.conceptCos]!.data);
      parts.specialCos!.push(out[SAFETY_IO.specialCos]!.data);
    }
    const join = (xs: Float32Array[]): Float32Array => {
      const all = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
      let o = 0;
      for (const x of xs) all.set(x, (o += x.length) - x.length);
      return all;
    };
    return {
      batch,
      pooled: join(parts.pooled!),
      imageEmbeds: join(parts.imageEmbeds!),
      conceptCos: join(parts.conceptCos!),
      specialCos: join(parts.specialCos!),
    };
  }

  /** The reference's decisions from the network's cosine similarities. */
  decide(e: SafetyEmbeddings): SafetyResult[] {
    const nc = this.conceptThresholds.length;
    const ns = this.specialThresholds.length;
    const results: SafetyResult[] = [];
    for (let i = 0; i < e.batch; i++) {
      results.push(
        safetyDecision(
          e.conceptCos.subarray(i * nc, (i + 1) * nc),
          e.specialCos.subarray(i * ns, (i + 1) * ns),
          this.conceptThresholds,
          this.specialThresholds,
        ),
      );
    }
    return results;
  }

  /** Checks already pre-processed pixels (the reference's `clip_input`). */
  async checkPixels(clipInput: Float32Array, batch: number): Promise<SafetyResult[]> {
    return this.decide(await this.embed(clipInput, batch));
  }

  /** Checks decoded images (any size): the reference's pre-processing, the network, the decision rule. */
  async check(images: readonly RgbImage[]): Promise<SafetyResult[]> {
    if (images.length === 0) return [];
    return this.checkPixels(await preprocessForClip(images, this.preprocess), images.length);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Applies a policy to flagged images: "block" replaces them with black (as the reference does), "blur" with a
 * strong Gaussian blur (sigma an eighth of the longer side, at least 8 px), "flag" keeps them and marks them.
 * Images not flagged come back unchanged with action "none".
 */
export async function applyPolicy(
  images: readonly RgbImage[],
  results: readonly SafetyResult[],
  policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
): Promise<PolicyOutcome[]> {
  if (images.length !== results.length)
    throw new InternalError(`applyPolicy: ${images.length} images but ${results.length} safety results`);
  checkPolicy(policy);
  const out: PolicyOutcome[] = [];
  for (let i = 0; i < images.length; i++) {
    const image = images[i]!;
    out.push(results[i]!.nsfw ? await flaggedOutcome(image, policy) : { image, nsfw: false, action: "none" });
  }
  return out;
}

/** What `policy` does to one flagged image (see applyPolicy). */
export async function flaggedOutcome(
  image: RgbImage,
  policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
): Promise<PolicyOutcome> {
  checkPolicy(policy);
  if (policy === "block")
    return {
      image: { width: image.width, height: image.height, data: new Uint8Array(image.width * image.height * 3) },
      nsfw: true,
      action: "blocked",
    };
  if (policy === "blur") return { image: await strongBlur(image), nsfw: true, action: "blurred" };
  return { image, nsfw: true, action: "flagged" };
}

function checkPolicy(policy: SafetyPolicy): void {
  if (!SAFETY_POLICIES.includes(policy))
    throw new InputError(`unknown safety policy "${String(policy)}"; use one of: ${SAFETY_POLICIES.join(", ")}`);
}

/** A Gaussian blur strong enough that nothing but broad colour areas remain. */
export async function strongBlur(image: RgbImage): Promise<RgbImage> {
  checkImage(image);
  const sigma = Math.max(8, Math.max(image.width, image.height) / 8);
  const { data, info } = await sharp(rawBuffer(image), {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .blur(sigma)
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== image.width || info.height !== image.height || info.channels !== 3) {
    throw new InternalError(
      `sharp's blur returned ${info.width}x${info.height}x${info.channels} for a ${image.width}x${image.height} RGB image`,
    );
  }
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** The infotext / metadata value for an image: what the checker found and did, or that it did not run. */
export function safetyMetadata(
  outcome: PolicyOutcome | undefined,
  state: { disabled?: boolean; policy?: SafetyPolicy } = {},
): string {
  if (state.disabled) return "off";
  if (!outcome) return "unavailable (no safety checker for this model)";
  if (outcome.action === "none") return `passed (policy ${state.policy ?? DEFAULT_SAFETY_POLICY})`;
  return `flagged, ${outcome.action}`;
}

function checkImage(img: RgbImage): void {
  if (
    !Number.isInteger(img.width) ||
    !Number.isInteger(img.height) ||
    img.width < 1 ||
    img.height < 1 ||
    img.data.length !== img.width * img.height * 3
  ) {
    throw new InternalError(
      `RGB image of ${img.width}x${img.height} has ${img.data.length} bytes, expected ${img.width * img.height * 3}`,
    );
  }
}

function rawBuffer(img: RgbImage): Buffer {
  return Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length);
}
