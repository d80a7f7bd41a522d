import { createHash } from "node:crypto";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { ModelFamily, PipelineConfig } from "../src/configs/pipeline.js";
import type { TextEncoderConfig } from "../src/configs/text-encoder.js";
import type { UNetConfig } from "../src/configs/unet.js";
import type { VaeConfig } from "../src/configs/vae.js";
import { openCheckpoint } from "../src/models/open-checkpoint.js";
import { clipTextParamShapes, unetParamShapes, vaeParamShapes, type ParamShapes } from "../src/models/param-shapes.js";
import { DIFFUSERS_FOLDERS, WEIGHT_STEMS } from "../src/weights/checkpoint.js";
import { f32ToF16 } from "../src/weights/half.js";
import { LDM_PARTS, type CheckpointComponent } from "../src/weights/ldm-keymap.js";
import { ldmStoredTensors, storedTensorData } from "../src/weights/ldm-keymap-reverse.js";
import { randomWeights } from "./random-weights.js";

/**
 * Full-size checkpoints with seeded random weights, for benchmarks: speed does not depend on the values, and a
 * written checkpoint goes the way a user's does (opened, hashed, read, converted, built, cached). Any PipelineConfig
 * (SD15, SD21, SDXL_BASE, ...), in either layout users bring:
 * - a diffusers folder (fp16 or fp32): config.json files written from the config, and the small files the configs
 *   do not describe (model_index.json, the scheduler config, the tokenizers) from the tiny reference model of the
 *   same family, whose tokenizers give ids inside every CLIP vocabulary;
 * - one .safetensors file in the published original (LDM/SGM) key layout, fp16, as most published checkpoints are.
 * Parameter shapes are the builders' own (models/param-shapes.ts); the single file's names come from the project's
 * key map run backwards (weights/ldm-keymap-reverse.ts). Tensors are streamed to disk one at a time (SDXL's UNet
 * alone has 2.6 B parameters). A checkpoint is written under a temporary name and renamed when complete, and its
 * name carries a digest of the config and layout, so a folder given to keep checkpoints between runs
 * (--checkpoint-dir) reuses only whole checkpoints of the same architecture.
 */

export type RandomLayout = { layout: "diffusers"; dtype: "F16" | "F32" } | { layout: "single-file" };

export interface RandomCheckpoint {
  /** The diffusers folder or the .safetensors file: what a user would pass as --model. */
  path: string;
  /** Bytes of the weight files (what the compile cache is compared with). */
  bytes: number;
  /** false when an earlier run's checkpoint was reused. */
  written: boolean;
}

/** Bumped when what this module writes changes, so that kept checkpoints are rewritten. */
const WRITER_VERSION = 1;

/** The tiny reference model of each family (../shared/fixtures): model_index.json, scheduler config, tokenizers. */
const TEMPLATES: Readonly<Partial<Record<ModelFamily, string>>> = {
  sd1: "sd15-tiny",
  sd2: "sd2v-tiny",
  sdxl: "sdxl-tiny",
};
const MODELS = resolve(import.meta.dirname, "../../shared/fixtures/reference/models");

/** The tiny model whose tokenizer folders (tokenizer/, tokenizer_2/) suit a family: --tokenizer for a single file. */
export function tokenizerTemplate(family: ModelFamily): string {
  const name = TEMPLATES[family === "sdxl-refiner" ? "sdxl" : family];
  if (!name || !existsSync(join(MODELS, name)))
    throw new Error(`no tiny ${family} reference model at ${join(MODELS, name ?? family)} to take tokenizers from`);
  return join(MODELS, name);
}

/** Writes the checkpoint into `dir` unless an identical one is already there, and checks that it opens as `config`. */
export function randomCheckpoint(dir: string, config: PipelineConfig, layout: RandomLayout): RandomCheckpoint {
  const tag = createHash("sha256")
    .update(JSON.stringify({ WRITER_VERSION, config, layout }))
    .digest("hex")
    .slice(0, 10);
  const name =
    layout.layout === "single-file"
      ? `${config.family}-${tag}.safetensors`
      : `${config.family}-${tag}-${layout.dtype.toLowerCase()}`;
  const path = join(dir, name);
  let written = false;
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    const partial = `${path}.partial`;
    rmSync(partial, { recursive: true, force: true });
    if (layout.layout === "single-file") writeSingleFile(partial, config);
    else writeDiffusersFolder(partial, config, layout.dtype);
    renameSync(partial, path);
    written = true;
  }
  checkOpensAs(path, config);
  return { path, bytes: weightBytes(path), written };
}

/** Opening the written checkpoint (every tensor's name and shape checked) must give back the config it was written for. */
function checkOpensAs(path: string, config: PipelineConfig): void {
  const ckpt = openCheckpoint(path, { prediction: config.predictionType });
  try {
    if (!isDeepStrictEqual(ckpt.config, config)) {
      throw new Error(
        `${path} opens as ${JSON.stringify(ckpt.config)}, not as the config it was written for, ${JSON.stringify(config)}`,
      );
    }
  } finally {
    ckpt.close();
  }
}

function weightBytes(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return path.endsWith(".safetensors") ? st.size : 0;
  return readdirSync(path).reduce((n, f) => n + weightBytes(join(path, f)), 0);
}

/** Each component's parameters under diffusers names, with a seed of its own. */
function componentWeights(config: PipelineConfig, c: CheckpointComponent): { shapes: ParamShapes; seed: number } {
  switch (c) {
    case "unet":
      return { shapes: unetParamShapes(config.unet), seed: 1 };
    case "vae":
      return { shapes: vaeParamShapes(config.vae), seed: 2 };
    case "textEncoder":
      return { shapes: clipTextParamShapes(config.textEncoder), seed: 3 };
    case "textEncoder2":
      return { shapes: clipTextParamShapes(config.textEncoder2!), seed: 4 };
  }
}

interface Tensor {
  name: string;
  shape: readonly number[];
  data: () => Float32Array;
}

/** A safetensors file written one tensor at a time, never holding more than one in memory. */
function writeSafetensors(path: string, tensors: readonly Tensor[], dtype: "F16" | "F32"): void {
  const size = dtype === "F16" ? 2 : 4;
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = size * t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so tensors stay aligned.
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(path, "w");
  try {
    const put = (b: Uint8Array) => {
      for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done);
    };
    put(prefix);
    put(Buffer.from(json));
    for (const t of tensors) {
      const data = t.data();
      const out = dtype === "F16" ? f32ToF16(data) : data;
      put(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The published single-file layout: every network under its part's prefix, fp16. SD2 files store OpenCLIP ViT-H
 * whole, one block more than SD2 runs (detection takes the stored blocks less one), so that block is written too.
 */
function writeSingleFile(path: string, config: PipelineConfig): void {
  const tensors: Tensor[] = [];
  for (const part of LDM_PARTS[config.family]) {
    let { shapes, seed } = componentWeights(config, part.component);
    if (config.family === "sd2" && part.layout === "open-clip") {
      shapes = clipTextParamShapes({ ...config.textEncoder, numHiddenLayers: config.textEncoder.numHiddenLayers + 1 });
    }
    const source = randomWeights(shapes, seed);
    for (const t of ldmStoredTensors(part, shapes))
      tensors.push({ name: t.stored, shape: t.shape, data: () => storedTensorData(t, source) });
  }
  writeSafetensors(path, tensors, "F16");
}

function writeDiffusersFolder(dir: string, config: PipelineConfig, dtype: "F16" | "F32"): void {
  const template = TEMPLATES[config.family];
  if (!template)
    throw new Error(
      `no tiny reference model of family ${config.family} to take model_index.json and tokenizers from: write it as a single file`,
    );
  const from = join(MODELS, template);
  const json = (file: string, value: unknown) => {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), JSON.stringify(value, null, 2) + "\n");
  };
  const folders = DIFFUSERS_FOLDERS[config.family];
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(from, "model_index.json"), join(dir, "model_index.json"));
  const scheduler = JSON.parse(readFileSync(join(from, "scheduler", "scheduler_config.json"), "utf8")) as Record<
    string,
    unknown
  >;
  json("scheduler/scheduler_config.json", { ...scheduler, prediction_type: config.predictionType });
  for (const c of Object.keys(folders) as CheckpointComponent[]) {
    const folder = folders[c]!;
    const { shapes, seed } = componentWeights(config, c);
    const source = randomWeights(shapes, seed);
    const stem = c === "unet" || c === "vae" ? WEIGHT_STEMS.unet! : WEIGHT_STEMS.text_encoder!;
    json(
      `${folder}/config.json`,
      c === "unet"
        ? unetJson(config.unet)
        : c === "vae"
          ? vaeJson(config.vae, config.unet)
          : textJson(c === "textEncoder" ? config.textEncoder : config.textEncoder2!),
    );
    writeSafetensors(
      join(dir, folder, `${stem}.safetensors`),
      [...shapes].map(([name, shape]) => ({ name, shape, data: () => source.float32(name) })),
      dtype,
    );
    if (folder.startsWith("text_encoder")) {
      const tokenizer = folder.replace("text_encoder", "tokenizer");
      mkdirSync(join(dir, tokenizer));
      for (const f of readdirSync(join(from, tokenizer)))
        copyFileSync(join(from, tokenizer, f), join(dir, tokenizer, f));
    }
  }
}

/** UNet2DConditionModel's config.json for a UNetConfig (configs/unet.ts reads it back; checkOpensAs compares). */
function unetJson(u: UNetConfig): Record<string, unknown> {
  const last = u.blockOutChannels.length - 1;
  // diffusers' per-level transformer depth; a level without attention ignores it, except that the mid block takes
  // the last level's (as the SDXL refiner, whose last level has none, relies on).
  const depth = u.downTransformerLayers.map((d, l) => (d[0] ? d[0] : l === last ? u.midTransformerLayers || 1 : 1));
  return {
    _class_name: "UNet2DConditionModel",
    in_channels: u.inChannels,
    out_channels: u.outChannels,
    block_out_channels: u.blockOutChannels,
    down_block_types: u.downBlockTypes,
    up_block_types: u.upBlockTypes,
    layers_per_block: u.layersPerBlock,
    cross_attention_dim: u.crossAttentionDim,
    // diffusers' naming quirk: attention_head_dim holds the head count when num_attention_heads is absent.
    attention_head_dim: u.attentionHeads,
    transformer_layers_per_block: depth,
    mid_block_type: u.midBlockType,
    use_linear_projection: u.useLinearProjection,
    upcast_attention: u.upcastAttention,
    norm_num_groups: u.normNumGroups,
    norm_eps: u.normEps,
    flip_sin_to_cos: u.flipSinToCos,
    freq_shift: u.freqShift,
    sample_size: u.sampleSize,
    addition_embed_type: u.additionEmbedType,
    addition_time_embed_dim: u.additionTimeEmbedDim,
    projection_class_embeddings_input_dim: u.projectionClassEmbeddingsInputDim,
    time_cond_proj_dim: u.timeCondProjDim,
  };
}

function vaeJson(v: VaeConfig, u: UNetConfig): Record<string, unknown> {
  return {
    _class_name: "AutoencoderKL",
    in_channels: v.inChannels,
    out_channels: v.outChannels,
    latent_channels: v.latentChannels,
    block_out_channels: v.blockOutChannels,
    down_block_types: v.blockOutChannels.map(() => "DownEncoderBlock2D"),
    up_block_types: v.blockOutChannels.map(() => "UpDecoderBlock2D"),
    layers_per_block: v.layersPerBlock,
    norm_num_groups: v.normNumGroups,
    scaling_factor: v.scalingFactor,
    force_upcast: v.forceUpcast,
    use_quant_conv: v.useQuantConv,
    use_post_quant_conv: v.usePostQuantConv,
    mid_block_add_attention: v.midBlockAddAttention,
    sample_size: u.sampleSize * 2 ** (v.blockOutChannels.length - 1),
  };
}

/** transformers' CLIPTextModel(WithProjection) config.json. */
function textJson(t: TextEncoderConfig): Record<string, unknown> {
  return {
    architectures: [t.projectionDim === null ? "CLIPTextModel" : "CLIPTextModelWithProjection"],
    model_type: "clip_text_model",
    vocab_size: t.vocabSize,
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numHiddenLayers,
    num_attention_heads: t.numAttentionHeads,
    max_position_embeddings: t.maxPositionEmbeddings,
    hidden_act: t.hiddenAct,
    layer_norm_eps: t.layerNormEps,
    eos_token_id: t.eosTokenId,
    ...(t.projectionDim !== null ? { projection_dim: t.projectionDim } : {}),
  };
}

/** A safetensors file of `shapes` with seeded random fp16 values (randomWeights): a LoRA or other add-on of known shapes. */
export function writeFp16(path: string, shapes: ParamShapes, seed = 1): void {
  const source = randomWeights(shapes, seed);
  writeSafetensors(
    path,
    [...shapes].map(([name, shape]) => ({ name, shape, data: () => source.float32(name) })),
    "F16",
  );
}
