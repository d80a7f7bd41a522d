import type { VisionConfig } from "./clip-vision.js";
import type { TextEncoderConfig, UNetConfig, VaeConfig } from "./configs.js";

/**
 * The parameters each architecture expects, as diffusers names -> shapes. Used to build full-size models with
 * random weights (benchmarks), and to tell a user which keys a checkpoint lacks.
 */
export type ParamShapes = Map<string, number[]>;

function conv(p: ParamShapes, name: string, out: number, inp: number, k: number, bias = true): void {
  p.set(`${name}.weight`, [out, inp, k, k]);
  if (bias) p.set(`${name}.bias`, [out]);
}
function lin(p: ParamShapes, name: string, out: number, inp: number, bias = true): void {
  p.set(`${name}.weight`, [out, inp]);
  if (bias) p.set(`${name}.bias`, [out]);
}
function norm(p: ParamShapes, name: string, c: number): void {
  p.set(`${name}.weight`, [c]);
  p.set(`${name}.bias`, [c]);
}

function resnet(p: ParamShapes, name: string, inp: number, out: number, temb?: number): void {
  norm(p, `${name}.norm1`, inp);
  conv(p, `${name}.conv1`, out, inp, 3);
  if (temb !== undefined) lin(p, `${name}.time_emb_proj`, out, temb);
  norm(p, `${name}.norm2`, out);
  conv(p, `${name}.conv2`, out, out, 3);
  if (inp !== out) conv(p, `${name}.conv_shortcut`, out, inp, 1);
}

function transformer(p: ParamShapes, name: string, c: number, context: number, layers: number, linearProjection: boolean): void {
  norm(p, `${name}.norm`, c);
  if (linearProjection) lin(p, `${name}.proj_in`, c, c);
  else conv(p, `${name}.proj_in`, c, c, 1);
  for (let i = 0; i < layers; i++) {
    const b = `${name}.transformer_blocks.${i}`;
    for (const [attn, kv] of [["attn1", c], ["attn2", context]] as const) {
      lin(p, `${b}.${attn}.to_q`, c, c, false);
      lin(p, `${b}.${attn}.to_k`, c, kv, false);
      lin(p, `${b}.${attn}.to_v`, c, kv, false);
      lin(p, `${b}.${attn}.to_out.0`, c, c);
    }
    for (const n of ["norm1", "norm2", "norm3"]) norm(p, `${b}.${n}`, c);
    lin(p, `${b}.ff.net.0.proj`, c * 8, c);
    lin(p, `${b}.ff.net.2`, c, c * 4);
  }
  if (linearProjection) lin(p, `${name}.proj_out`, c, c);
  else conv(p, `${name}.proj_out`, c, c, 1);
}

export function unetParamShapes(c: UNetConfig): ParamShapes {
  const p: ParamShapes = new Map();
  const ch = c.blockOutChannels;
  const temb = ch[0]! * 4;
  const levels = ch.length;
  lin(p, "time_embedding.linear_1", temb, ch[0]!);
  lin(p, "time_embedding.linear_2", temb, temb);
  conv(p, "conv_in", ch[0]!, c.inChannels, 3);
  const skips: number[] = [ch[0]!];
  let prev = ch[0]!;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      resnet(p, `down_blocks.${i}.resnets.${j}`, prev, ch[i]!, temb);
      prev = ch[i]!;
      if (c.downBlockTypes[i] === "CrossAttnDownBlock2D") transformer(p, `down_blocks.${i}.attentions.${j}`, prev, c.crossAttentionDim, c.transformerLayersPerBlock[i]!, c.useLinearProjection);
      skips.push(prev);
    }
    if (i < levels - 1) {
      conv(p, `down_blocks.${i}.downsamplers.0.conv`, prev, prev, 3);
      skips.push(prev);
    }
  }
  const mid = ch[levels - 1]!;
  resnet(p, "mid_block.resnets.0", mid, mid, temb);
  transformer(p, "mid_block.attentions.0", mid, c.crossAttentionDim, c.transformerLayersPerBlock[levels - 1]!, c.useLinearProjection);
  resnet(p, "mid_block.resnets.1", mid, mid, temb);
  const rev = [...ch].reverse();
  const revLayers = [...c.transformerLayersPerBlock].reverse();
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < c.layersPerBlock + 1; j++) {
      resnet(p, `up_blocks.${i}.resnets.${j}`, prev + skips.pop()!, rev[i]!, temb);
      prev = rev[i]!;
      if (c.upBlockTypes[i] === "CrossAttnUpBlock2D") transformer(p, `up_blocks.${i}.attentions.${j}`, prev, c.crossAttentionDim, revLayers[i]!, c.useLinearProjection);
    }
    if (i < levels - 1) conv(p, `up_blocks.${i}.upsamplers.0.conv`, prev, prev, 3);
  }
  norm(p, "conv_norm_out", ch[0]!);
  conv(p, "conv_out", c.outChannels, ch[0]!, 3);
  return p;
}

export function vaeParamShapes(c: VaeConfig): ParamShapes {
  const p: ParamShapes = new Map();
  const ch = c.blockOutChannels;
  const levels = ch.length;
  const top = ch[levels - 1]!;
  const mid = (name: string) => {
    resnet(p, `${name}.resnets.0`, top, top);
    if (c.midBlockAddAttention) {
      norm(p, `${name}.attentions.0.group_norm`, top);
      for (const l of ["to_q", "to_k", "to_v", "to_out.0"]) lin(p, `${name}.attentions.0.${l}`, top, top);
    }
    resnet(p, `${name}.resnets.1`, top, top);
  };
  conv(p, "encoder.conv_in", ch[0]!, c.inChannels, 3);
  let prev = ch[0]!;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      resnet(p, `encoder.down_blocks.${i}.resnets.${j}`, prev, ch[i]!);
      prev = ch[i]!;
    }
    if (i < levels - 1) conv(p, `encoder.down_blocks.${i}.downsamplers.0.conv`, prev, prev, 3);
  }
  mid("encoder.mid_block");
  norm(p, "encoder.conv_norm_out", top);
  conv(p, "encoder.conv_out", 2 * c.latentChannels, top, 3);
  if (c.useQuantConv) conv(p, "quant_conv", 2 * c.latentChannels, 2 * c.latentChannels, 1);
  if (c.usePostQuantConv) conv(p, "post_quant_conv", c.latentChannels, c.latentChannels, 1);
  conv(p, "decoder.conv_in", top, c.latentChannels, 3);
  mid("decoder.mid_block");
  const rev = [...ch].reverse();
  prev = top;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < c.layersPerBlock + 1; j++) {
      resnet(p, `decoder.up_blocks.${i}.resnets.${j}`, prev, rev[i]!);
      prev = rev[i]!;
    }
    if (i < levels - 1) conv(p, `decoder.up_blocks.${i}.upsamplers.0.conv`, prev, prev, 3);
  }
  norm(p, "decoder.conv_norm_out", ch[0]!);
  conv(p, "decoder.conv_out", c.outChannels, ch[0]!, 3);
  return p;
}

export function clipTextParamShapes(c: TextEncoderConfig): ParamShapes {
  const p: ParamShapes = new Map();
  const d = c.hiddenSize;
  p.set("text_model.embeddings.token_embedding.weight", [c.vocabSize, d]);
  p.set("text_model.embeddings.position_embedding.weight", [c.maxPositionEmbeddings, d]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const l = `text_model.encoder.layers.${i}`;
    for (const proj of ["q_proj", "k_proj", "v_proj", "out_proj"]) lin(p, `${l}.self_attn.${proj}`, d, d);
    norm(p, `${l}.layer_norm1`, d);
    lin(p, `${l}.mlp.fc1`, c.intermediateSize, d);
    lin(p, `${l}.mlp.fc2`, d, c.intermediateSize);
    norm(p, `${l}.layer_norm2`, d);
  }
  norm(p, "text_model.final_layer_norm", d);
  return p;
}

/** A CLIPVisionTransformer's parameters (keys as under a scoped `vision_model`), plus `visual_projection.weight` when asked. */
export function clipVisionParamShapes(c: VisionConfig, opts: { prefix?: string; projection?: boolean } = {}): ParamShapes {
  const p: ParamShapes = new Map();
  const d = c.hiddenSize;
  const t = opts.prefix ? `${opts.prefix}.` : "";
  p.set(`${t}embeddings.class_embedding`, [d]);
  p.set(`${t}embeddings.patch_embedding.weight`, [d, c.numChannels, c.patchSize, c.patchSize]);
  p.set(`${t}embeddings.position_embedding.weight`, [(c.imageSize / c.patchSize) ** 2 + 1, d]);
  norm(p, `${t}pre_layrnorm`, d);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const l = `${t}encoder.layers.${i}`;
    for (const proj of ["q_proj", "k_proj", "v_proj", "out_proj"]) lin(p, `${l}.self_attn.${proj}`, d, d);
    norm(p, `${l}.layer_norm1`, d);
    lin(p, `${l}.mlp.fc1`, c.intermediateSize, d);
    lin(p, `${l}.mlp.fc2`, d, c.intermediateSize);
    norm(p, `${l}.layer_norm2`, d);
  }
  norm(p, `${t}post_layernorm`, d);
  if (opts.projection) lin(p, "visual_projection", c.projectionDim, d, false);
  return p;
}

export function paramCount(shapes: ParamShapes): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}
