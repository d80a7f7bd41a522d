/**
 * The {name: shape} maps of real single-file checkpoints (SD 1.5 v1-5-pruned-emaonly, SD 2.1 768-v, SDXL 1.0 base
 * and refiner), generated here from the original model definitions with the parameters of their inference configs
 * (v1-inference.yaml, v2-inference-v.yaml, sd_xl_base.yaml, sd_xl_refiner.yaml). They are written in the original
 * module terms on purpose (openaimodel's input_blocks running index, the VAE's bottom-up decoder, OpenCLIP's fused
 * attention), independently of the diffusers side, so that the key map and detection are checked against a second
 * derivation, not against themselves.
 */

import { closeSync, openSync, truncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { f16Bytes, tempDir } from "./safetensors-writer.js";

type ShapeList = Map<string, number[]>;

export interface UNetSpec {
  modelChannels: number;
  channelMult: number[];
  numResBlocks: number;
  /** Levels with spatial transformers (attention_resolutions as level indices). */
  attentionLevels: number[];
  contextDim: number;
  /** transformer_depth per level, and transformer_depth_middle. */
  transformerDepth: number[];
  transformerDepthMiddle: number;
  /** use_linear_in_transformer (SD2, SDXL): Linear proj_in/proj_out instead of 1x1 convs. */
  linear: boolean;
  /** adm_in_channels (SDXL's label_emb input: pooled text + size/crop ids). */
  admInChannels?: number;
}

/** A text tower: transformers' CLIPTextModel (SD1, SDXL's first) or OpenCLIP's text transformer (SD2, SDXL's bigG). */
interface TextSpec {
  prefix: string;
  layout: "clip" | "open-clip";
  width: number;
  layers: number;
  mlp: number;
  /** OpenCLIP's text_projection [width, embed_dim]. */
  embedDim?: number;
}

export interface CheckpointSpec {
  unet: UNetSpec;
  texts: TextSpec[];
}

const VAE = { ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, embedDim: 4, inChannels: 3, outCh: 3 };
const VOCAB = 49408,
  POSITIONS = 77;

export const SD15_SPEC: CheckpointSpec = {
  unet: {
    modelChannels: 320,
    channelMult: [1, 2, 4, 4],
    numResBlocks: 2,
    attentionLevels: [0, 1, 2],
    contextDim: 768,
    transformerDepth: [1, 1, 1, 1],
    transformerDepthMiddle: 1,
    linear: false,
  },
  texts: [{ prefix: "cond_stage_model.transformer.", layout: "clip", width: 768, layers: 12, mlp: 3072 }],
};

/** v2-inference-v.yaml: FrozenOpenCLIPEmbedder (ViT-H-14, all 24 blocks stored, layer "penultimate"). */
export const SD21_SPEC: CheckpointSpec = {
  unet: {
    modelChannels: 320,
    channelMult: [1, 2, 4, 4],
    numResBlocks: 2,
    attentionLevels: [0, 1, 2],
    contextDim: 1024,
    transformerDepth: [1, 1, 1, 1],
    transformerDepthMiddle: 1,
    linear: true,
  },
  texts: [
    { prefix: "cond_stage_model.model.", layout: "open-clip", width: 1024, layers: 24, mlp: 4096, embedDim: 1024 },
  ],
};

/** sd_xl_base.yaml: attention at levels 1 and 2 (attention_resolutions [4, 2]), transformer_depth [1, 2, 10]. */
export const SDXL_SPEC: CheckpointSpec = {
  unet: {
    modelChannels: 320,
    channelMult: [1, 2, 4],
    numResBlocks: 2,
    attentionLevels: [1, 2],
    contextDim: 2048,
    transformerDepth: [1, 2, 10],
    transformerDepthMiddle: 10,
    linear: true,
    admInChannels: 2816,
  },
  texts: [
    { prefix: "conditioner.embedders.0.transformer.", layout: "clip", width: 768, layers: 12, mlp: 3072 },
    {
      prefix: "conditioner.embedders.1.model.",
      layout: "open-clip",
      width: 1280,
      layers: 32,
      mlp: 5120,
      embedDim: 1280,
    },
  ],
};

/** sd_xl_refiner.yaml: model_channels 384, transformer_depth 4, context 1280, one FrozenOpenCLIPEmbedder2 (bigG). */
export const SDXL_REFINER_SPEC: CheckpointSpec = {
  unet: {
    modelChannels: 384,
    channelMult: [1, 2, 4, 4],
    numResBlocks: 2,
    attentionLevels: [1, 2],
    contextDim: 1280,
    transformerDepth: [4, 4, 4, 4],
    transformerDepthMiddle: 4,
    linear: true,
    admInChannels: 2560,
  },
  texts: [
    {
      prefix: "conditioner.embedders.0.model.",
      layout: "open-clip",
      width: 1280,
      layers: 32,
      mlp: 5120,
      embedDim: 1280,
    },
  ],
};

function param(out: ShapeList, name: string, shape: number[]): void {
  out.set(name, shape);
}

function normLayer(out: ShapeList, p: string, c: number): void {
  param(out, `${p}.weight`, [c]);
  param(out, `${p}.bias`, [c]);
}

function convLayer(out: ShapeList, p: string, cout: number, cin: number, k: number): void {
  param(out, `${p}.weight`, [cout, cin, k, k]);
  param(out, `${p}.bias`, [cout]);
}

function linearLayer(out: ShapeList, p: string, cout: number, cin: number, bias = true): void {
  param(out, `${p}.weight`, [cout, cin]);
  if (bias) param(out, `${p}.bias`, [cout]);
}

/** openaimodel.ResBlock */
function resBlock(out: ShapeList, p: string, cin: number, cout: number, embDim: number): void {
  normLayer(out, `${p}.in_layers.0`, cin);
  convLayer(out, `${p}.in_layers.2`, cout, cin, 3);
  linearLayer(out, `${p}.emb_layers.1`, cout, embDim);
  normLayer(out, `${p}.out_layers.0`, cout);
  convLayer(out, `${p}.out_layers.3`, cout, cout, 3);
  if (cin !== cout) convLayer(out, `${p}.skip_connection`, cout, cin, 1);
}

/** attention.SpatialTransformer: 1x1 conv projections (SD1) or Linear ones (use_linear_in_transformer). */
function spatialTransformer(out: ShapeList, p: string, c: number, depth: number, u: UNetSpec): void {
  normLayer(out, `${p}.norm`, c);
  if (u.linear) linearLayer(out, `${p}.proj_in`, c, c);
  else convLayer(out, `${p}.proj_in`, c, c, 1);
  for (let d = 0; d < depth; d++) {
    const b = `${p}.transformer_blocks.${d}`;
    for (const [attn, ctx] of [
      ["attn1", c],
      ["attn2", u.contextDim],
    ] as const) {
      linearLayer(out, `${b}.${attn}.to_q`, c, c, false);
      linearLayer(out, `${b}.${attn}.to_k`, c, ctx, false);
      linearLayer(out, `${b}.${attn}.to_v`, c, ctx, false);
      linearLayer(out, `${b}.${attn}.to_out.0`, c, c);
    }
    linearLayer(out, `${b}.ff.net.0.proj`, c * 8, c);
    linearLayer(out, `${b}.ff.net.2`, c, c * 4);
    for (const n of ["norm1", "norm2", "norm3"]) normLayer(out, `${b}.${n}`, c);
  }
  if (u.linear) linearLayer(out, `${p}.proj_out`, c, c);
  else convLayer(out, `${p}.proj_out`, c, c, 1);
}

/** openaimodel's time embedding, input blocks and middle block (cldm.ControlNet has the same); returns the skip widths. */
function unetEncoder(out: ShapeList, pre: string, u: UNetSpec, inChannels: number): { skips: number[]; ch: number } {
  const mc = u.modelChannels,
    emb = 4 * mc;
  linearLayer(out, `${pre}time_embed.0`, emb, mc);
  linearLayer(out, `${pre}time_embed.2`, emb, emb);
  if (u.admInChannels) {
    linearLayer(out, `${pre}label_emb.0.0`, emb, u.admInChannels);
    linearLayer(out, `${pre}label_emb.0.2`, emb, emb);
  }
  convLayer(out, `${pre}input_blocks.0.0`, mc, inChannels, 3);
  const skips = [mc];
  let ch = mc,
    index = 1;
  u.channelMult.forEach((mult, level) => {
    for (let r = 0; r < u.numResBlocks; r++) {
      resBlock(out, `${pre}input_blocks.${index}.0`, ch, mult * mc, emb);
      ch = mult * mc;
      if (u.attentionLevels.includes(level))
        spatialTransformer(out, `${pre}input_blocks.${index}.1`, ch, u.transformerDepth[level]!, u);
      skips.push(ch);
      index++;
    }
    if (level !== u.channelMult.length - 1) {
      convLayer(out, `${pre}input_blocks.${index}.0.op`, ch, ch, 3);
      skips.push(ch);
      index++;
    }
  });
  resBlock(out, `${pre}middle_block.0`, ch, ch, emb);
  spatialTransformer(out, `${pre}middle_block.1`, ch, u.transformerDepthMiddle, u);
  resBlock(out, `${pre}middle_block.2`, ch, ch, emb);
  return { skips, ch };
}

function unet(out: ShapeList, pre: string, u: UNetSpec, inChannels: number): void {
  const mc = u.modelChannels,
    emb = 4 * mc;
  const encoder = unetEncoder(out, pre, u, inChannels);
  const skips = encoder.skips;
  let ch = encoder.ch,
    index = 0;
  [...u.channelMult.entries()].reverse().forEach(([level, mult]) => {
    for (let i = 0; i <= u.numResBlocks; i++) {
      const p = `${pre}output_blocks.${index}`;
      resBlock(out, `${p}.0`, ch + skips.pop()!, mc * mult, emb);
      ch = mc * mult;
      let sub = 1;
      if (u.attentionLevels.includes(level))
        spatialTransformer(out, `${p}.${sub++}`, ch, u.transformerDepth[level]!, u);
      if (level !== 0 && i === u.numResBlocks) convLayer(out, `${p}.${sub}.conv`, ch, ch, 3);
      index++;
    }
  });
  normLayer(out, `${pre}out.0`, mc);
  convLayer(out, `${pre}out.2`, 4, mc, 3);
}

/** model.ResnetBlock of the autoencoder */
function vaeResnet(out: ShapeList, p: string, cin: number, cout: number): void {
  normLayer(out, `${p}.norm1`, cin);
  convLayer(out, `${p}.conv1`, cout, cin, 3);
  normLayer(out, `${p}.norm2`, cout);
  convLayer(out, `${p}.conv2`, cout, cout, 3);
  if (cin !== cout) convLayer(out, `${p}.nin_shortcut`, cout, cin, 1);
}

function vaeMid(out: ShapeList, p: string, c: number): void {
  vaeResnet(out, `${p}.block_1`, c, c);
  normLayer(out, `${p}.attn_1.norm`, c);
  for (const k of ["q", "k", "v", "proj_out"]) convLayer(out, `${p}.attn_1.${k}`, c, c, 1);
  vaeResnet(out, `${p}.block_2`, c, c);
}

function vae(out: ShapeList, pre: string): void {
  const { ch, chMult, numResBlocks, zChannels } = VAE;
  const last = chMult.length - 1;
  convLayer(out, `${pre}encoder.conv_in`, ch, VAE.inChannels, 3);
  let blockIn = ch;
  chMult.forEach((mult, i) => {
    for (let j = 0; j < numResBlocks; j++) {
      vaeResnet(out, `${pre}encoder.down.${i}.block.${j}`, blockIn, ch * mult);
      blockIn = ch * mult;
    }
    if (i !== last) convLayer(out, `${pre}encoder.down.${i}.downsample.conv`, blockIn, blockIn, 3);
  });
  vaeMid(out, `${pre}encoder.mid`, blockIn);
  normLayer(out, `${pre}encoder.norm_out`, blockIn);
  convLayer(out, `${pre}encoder.conv_out`, 2 * zChannels, blockIn, 3);
  blockIn = ch * chMult[last]!;
  convLayer(out, `${pre}decoder.conv_in`, blockIn, zChannels, 3);
  vaeMid(out, `${pre}decoder.mid`, blockIn);
  for (let i = last; i >= 0; i--) {
    for (let j = 0; j <= numResBlocks; j++) {
      vaeResnet(out, `${pre}decoder.up.${i}.block.${j}`, blockIn, ch * chMult[i]!);
      blockIn = ch * chMult[i]!;
    }
    if (i !== 0) convLayer(out, `${pre}decoder.up.${i}.upsample.conv`, blockIn, blockIn, 3);
  }
  normLayer(out, `${pre}decoder.norm_out`, ch);
  convLayer(out, `${pre}decoder.conv_out`, VAE.outCh, ch, 3);
  convLayer(out, `${pre}quant_conv`, 2 * VAE.embedDim, 2 * zChannels, 1);
  convLayer(out, `${pre}post_quant_conv`, zChannels, VAE.embedDim, 1);
}

/** transformers' CLIPTextModel as saved by FrozenCLIPEmbedder (with the position_ids buffer). */
function clipText(out: ShapeList, t: TextSpec): void {
  const { prefix: pre, width: h, mlp } = t;
  param(out, `${pre}text_model.embeddings.token_embedding.weight`, [VOCAB, h]);
  param(out, `${pre}text_model.embeddings.position_embedding.weight`, [POSITIONS, h]);
  param(out, `${pre}text_model.embeddings.position_ids`, [1, POSITIONS]);
  for (let i = 0; i < t.layers; i++) {
    const p = `${pre}text_model.encoder.layers.${i}`;
    for (const k of ["k_proj", "v_proj", "q_proj", "out_proj"]) linearLayer(out, `${p}.self_attn.${k}`, h, h);
    normLayer(out, `${p}.layer_norm1`, h);
    linearLayer(out, `${p}.mlp.fc1`, mlp, h);
    linearLayer(out, `${p}.mlp.fc2`, h, mlp);
    normLayer(out, `${p}.layer_norm2`, h);
  }
  normLayer(out, `${pre}text_model.final_layer_norm`, h);
}

/** open_clip's CLIP text side (visual tower deleted by the embedder): fused attention input projection, logit_scale. */
function openClipText(out: ShapeList, t: TextSpec): void {
  const { prefix: pre, width: h, mlp } = t;
  param(out, `${pre}positional_embedding`, [POSITIONS, h]);
  param(out, `${pre}token_embedding.weight`, [VOCAB, h]);
  param(out, `${pre}text_projection`, [h, t.embedDim!]);
  param(out, `${pre}logit_scale`, []);
  for (let i = 0; i < t.layers; i++) {
    const p = `${pre}transformer.resblocks.${i}`;
    normLayer(out, `${p}.ln_1`, h);
    param(out, `${p}.attn.in_proj_weight`, [3 * h, h]);
    param(out, `${p}.attn.in_proj_bias`, [3 * h]);
    linearLayer(out, `${p}.attn.out_proj`, h, h);
    normLayer(out, `${p}.ln_2`, h);
    linearLayer(out, `${p}.mlp.c_fc`, mlp, h);
    linearLayer(out, `${p}.mlp.c_proj`, h, mlp);
  }
  normLayer(out, `${pre}ln_final`, h);
}

/**
 * lllyasviel's cldm.ControlNet for a UNet spec (cldm_v15.yaml: hint_channels 3): the UNet's encoder, input_hint_block
 * (convs 3->16->16->32->32->96->96->256 with SiLUs between, strides 2 at 32, 96, 256, then a zero conv to
 * model_channels), a zero 1x1 conv per skip connection and middle_block_out.
 */
export function controlNetLdmShapes(u: UNetSpec, pre = "control_model."): Map<string, number[]> {
  const out: ShapeList = new Map();
  const { skips, ch } = unetEncoder(out, pre, u, 4);
  const hint = [
    [16, 3],
    [16, 16],
    [32, 16],
    [32, 32],
    [96, 32],
    [96, 96],
    [256, 96],
    [u.modelChannels, 256],
  ] as const;
  hint.forEach(([cout, cin], i) => convLayer(out, `${pre}input_hint_block.${2 * i}`, cout, cin, 3));
  skips.forEach((c, i) => convLayer(out, `${pre}zero_convs.${i}.0`, c, c, 1));
  convLayer(out, `${pre}middle_block_out.0`, ch, ch, 1);
  return out;
}

/** SD1.5 published parameter counts (UNet 859.52M, VAE 83.65M, CLIP ViT-L/14 text 123.06M). */
export const SD15_PARAMETERS = { unet: 859_520_964, vae: 83_653_863, textEncoder: 123_060_480 };

/** The header of a single file as {name: shape}; `inChannels` 9 gives the inpainting variant. */
export function ldmShapes(spec: CheckpointSpec, inChannels = 4): Map<string, number[]> {
  const out: ShapeList = new Map();
  // Training leftovers that real files carry beside the networks.
  param(out, "alphas_cumprod", [1000]);
  param(out, "betas", [1000]);
  param(out, "model_ema.decay", []);
  param(out, "model_ema.num_updates", []);
  unet(out, "model.diffusion_model.", spec.unet, inChannels);
  vae(out, "first_stage_model.");
  for (const t of spec.texts) (t.layout === "clip" ? clipText : openClipText)(out, t);
  return out;
}

/** The header of an SD1.5 single file. */
export function sd15LdmShapes(inChannels = 4): Map<string, number[]> {
  return ldmShapes(SD15_SPEC, inChannels);
}

export function countUnder(shapes: ReadonlyMap<string, readonly number[]>, prefix: string, skip?: RegExp): number {
  let n = 0;
  for (const [k, s] of shapes) if (k.startsWith(prefix) && !skip?.test(k)) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * A full-size single file as the published checkpoints lay it out (fp16), written sparse: the header and the
 * tensors given in `data`; every other byte is a hole that reads as zeros and takes no disk space. Opening a
 * checkpoint reads headers only, so detection and verification see the real names and shapes at full size.
 */
export function sparseCheckpoint(spec: CheckpointSpec, data: Record<string, number[]> = {}): string {
  return sparseFile(ldmShapes(spec), data);
}

/** Any {name: shape} header written as a sparse fp16 file (see sparseCheckpoint). */
export function sparseFile(shapes: Map<string, number[]>, data: Record<string, number[]> = {}): string {
  // Extra keys of the file (markers such as v_pred): scalars unless the data says otherwise.
  for (const [name, values] of Object.entries(data))
    if (!shapes.has(name)) shapes.set(name, values.length ? [values.length] : []);
  const header: Record<string, unknown> = {};
  const offsets = new Map<string, number>();
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F16", shape, data_offsets: [offset, offset + bytes] };
    offsets.set(name, offset);
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const path = join(tempDir("full"), "model.safetensors");
  const fd = openSync(path, "w");
  try {
    writeSync(fd, Buffer.concat([prefix, json]));
    for (const [name, values] of Object.entries(data))
      if (values.length) writeSync(fd, f16Bytes(values), 0, 2 * values.length, 8 + json.length + offsets.get(name)!);
  } finally {
    closeSync(fd);
  }
  truncateSync(path, 8 + json.length + offset);
  return path;
}
