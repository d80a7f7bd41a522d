import { CheckpointError } from "../errors.js";
import type { Dtype, SafetensorsFile } from "./safetensors.js";
import type { WeightSource } from "./weight-source.js";

/**
 * Name translation from the original single-file layout (CompVis/Stability "LDM" checkpoints:
 * `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`) to diffusers names, for
 * Stable Diffusion 1.x. Every rename lives in the tables below; the code around them only places a block at
 * its level and layer, which the LDM layout encodes as one running index.
 */

export type Component = "unet" | "vae" | "textEncoder";

/** Where each network lives in a single-file SD1 checkpoint. */
export const LDM_PREFIXES: Readonly<Record<Component, string>> = {
  unet: "model.diffusion_model.",
  vae: "first_stage_model.",
  textEncoder: "cond_stage_model.transformer.",
};

const COMPONENT_NAMES: Readonly<Record<Component, string>> = { unet: "UNet", vae: "VAE", textEncoder: "text encoder" };

/**
 * Tensors under a component's prefix that are not parameters of the diffusers model. They are dropped from both
 * layouts so that the two give the same key set and parameter count.
 */
const NOT_PARAMETERS: Readonly<Record<Component, readonly RegExp[]>> = {
  unet: [],
  // LDM training kept the discriminator and LPIPS weights under loss.*; some merged checkpoints still carry them.
  vae: [/^loss\./],
  // A constant 0..76 buffer, not a weight; some fp16 conversions even stored it as rounded floats.
  textEncoder: [/^text_model\.embeddings\.position_ids$/, /^embeddings\.position_ids$/],
};

/** Buffers a diffusers/transformers component file may carry beside its parameters (older exports). */
export function isDiffusersBuffer(component: Component, name: string): boolean {
  return NOT_PARAMETERS[component].some((re) => re.test(name));
}

/** One leaf rename: the first `from` that starts the remaining name is replaced by `to`. */
type Leaf = readonly [from: string, to: string, reshape?: "squeeze-1x1"];

const SAME: readonly Leaf[] = [["", ""]];

const UNET_TOP: readonly Leaf[] = [
  ["time_embed.0.", "time_embedding.linear_1."],
  ["time_embed.2.", "time_embedding.linear_2."],
  ["input_blocks.0.0.", "conv_in."],
  ["out.0.", "conv_norm_out."],
  ["out.2.", "conv_out."],
];

const UNET_RESNET: readonly Leaf[] = [
  ["in_layers.0.", "norm1."],
  ["in_layers.2.", "conv1."],
  ["emb_layers.1.", "time_emb_proj."],
  ["out_layers.0.", "norm2."],
  ["out_layers.3.", "conv2."],
  ["skip_connection.", "conv_shortcut."],
];

// The spatial transformer already uses diffusers' names inside (the diffusers module was modelled on it).
const UNET_ATTENTION: readonly Leaf[] = [
  ["norm.", "norm."],
  ["proj_in.", "proj_in."],
  ["proj_out.", "proj_out."],
  ["transformer_blocks.", "transformer_blocks."],
];

const UNET_DOWNSAMPLER: readonly Leaf[] = [["op.", "conv."]];
const UNET_UPSAMPLER: readonly Leaf[] = [["conv.", "conv."]];

const VAE_TOP: readonly Leaf[] = [
  ["quant_conv.", "quant_conv."],
  ["post_quant_conv.", "post_quant_conv."],
  ["encoder.conv_in.", "encoder.conv_in."],
  ["encoder.norm_out.", "encoder.conv_norm_out."],
  ["encoder.conv_out.", "encoder.conv_out."],
  ["decoder.conv_in.", "decoder.conv_in."],
  ["decoder.norm_out.", "decoder.conv_norm_out."],
  ["decoder.conv_out.", "decoder.conv_out."],
];

const VAE_RESNET: readonly Leaf[] = [
  ["norm1.", "norm1."],
  ["conv1.", "conv1."],
  ["norm2.", "norm2."],
  ["conv2.", "conv2."],
  ["nin_shortcut.", "conv_shortcut."],
];

// The LDM VAE attention uses 1x1 convolutions where diffusers uses Linear layers: same numbers, shape [C,C,1,1].
const VAE_ATTENTION: readonly Leaf[] = [
  ["q.", "to_q.", "squeeze-1x1"],
  ["k.", "to_k.", "squeeze-1x1"],
  ["v.", "to_v.", "squeeze-1x1"],
  ["proj_out.", "to_out.0.", "squeeze-1x1"],
  ["norm.", "group_norm."],
];

const VAE_RESAMPLER: readonly Leaf[] = [["conv.", "conv."]];

/** Structural facts of the file that the running block indices depend on. */
interface Layout {
  /** ResNets per UNet down level (SD1: 2). Each level occupies layersPerBlock + 1 input blocks (the last: downsampler). */
  layersPerBlock: number;
  /** VAE decoder levels: the LDM decoder numbers them bottom-up, diffusers top-down. */
  vaeUpLevels: number;
}

/** A block rule places a matched block in the diffusers tree and says how to rename what is inside it. */
interface BlockRule {
  readonly pattern: RegExp;
  readonly place: (m: RegExpMatchArray, layout: Layout) => { prefix: string; leaves: readonly Leaf[]; rest: string } | undefined;
}

const UNET_BLOCKS: readonly BlockRule[] = [
  {
    // input_blocks.{1 + level*(L+1) + layer}: .0 ResNet, .1 transformer; layer L is the downsampler (.0.op).
    pattern: /^input_blocks\.(\d+)\.(\d+)\.(.+)$/,
    place: (m, { layersPerBlock: L }) => {
      const i = Number(m[1]) - 1, sub = Number(m[2]), rest = m[3]!;
      if (i < 0) return undefined;
      const level = Math.floor(i / (L + 1)), layer = i % (L + 1);
      if (layer === L) return sub === 0 ? { prefix: `down_blocks.${level}.downsamplers.0.`, leaves: UNET_DOWNSAMPLER, rest } : undefined;
      if (sub === 0) return { prefix: `down_blocks.${level}.resnets.${layer}.`, leaves: UNET_RESNET, rest };
      if (sub === 1) return { prefix: `down_blocks.${level}.attentions.${layer}.`, leaves: UNET_ATTENTION, rest };
      return undefined;
    },
  },
  {
    pattern: /^middle_block\.([0-2])\.(.+)$/,
    place: (m) => {
      const rest = m[2]!;
      switch (m[1]) {
        case "0": return { prefix: "mid_block.resnets.0.", leaves: UNET_RESNET, rest };
        case "1": return { prefix: "mid_block.attentions.0.", leaves: UNET_ATTENTION, rest };
        default: return { prefix: "mid_block.resnets.1.", leaves: UNET_RESNET, rest };
      }
    },
  },
  {
    // output_blocks.{level*(L+1) + layer}: .0 ResNet, then the transformer if the level has one, then the upsampler
    // (a `conv`), so the upsampler is .1 or .2 depending on the level.
    pattern: /^output_blocks\.(\d+)\.(\d+)\.(.+)$/,
    place: (m, { layersPerBlock: L }) => {
      const i = Number(m[1]), sub = Number(m[2]), rest = m[3]!;
      const level = Math.floor(i / (L + 1)), layer = i % (L + 1);
      if (sub === 0) return { prefix: `up_blocks.${level}.resnets.${layer}.`, leaves: UNET_RESNET, rest };
      if (rest.startsWith("conv.")) return layer === L ? { prefix: `up_blocks.${level}.upsamplers.0.`, leaves: UNET_UPSAMPLER, rest } : undefined;
      if (sub === 1) return { prefix: `up_blocks.${level}.attentions.${layer}.`, leaves: UNET_ATTENTION, rest };
      return undefined;
    },
  },
  { pattern: /^(.+)$/, place: (m) => ({ prefix: "", leaves: UNET_TOP, rest: m[1]! }) },
];

const VAE_BLOCKS: readonly BlockRule[] = [
  {
    pattern: /^(encoder|decoder)\.mid\.block_([12])\.(.+)$/,
    place: (m) => ({ prefix: `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.`, leaves: VAE_RESNET, rest: m[3]! }),
  },
  { pattern: /^(encoder|decoder)\.mid\.attn_1\.(.+)$/, place: (m) => ({ prefix: `${m[1]}.mid_block.attentions.0.`, leaves: VAE_ATTENTION, rest: m[2]! }) },
  { pattern: /^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/, place: (m) => ({ prefix: `encoder.down_blocks.${m[1]}.resnets.${m[2]}.`, leaves: VAE_RESNET, rest: m[3]! }) },
  { pattern: /^encoder\.down\.(\d+)\.downsample\.(.+)$/, place: (m) => ({ prefix: `encoder.down_blocks.${m[1]}.downsamplers.0.`, leaves: VAE_RESAMPLER, rest: m[2]! }) },
  {
    pattern: /^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/,
    place: (m, { vaeUpLevels }) => ({ prefix: `decoder.up_blocks.${vaeUpLevels - 1 - Number(m[1])}.resnets.${m[2]}.`, leaves: VAE_RESNET, rest: m[3]! }),
  },
  {
    pattern: /^decoder\.up\.(\d+)\.upsample\.(.+)$/,
    place: (m, { vaeUpLevels }) => ({ prefix: `decoder.up_blocks.${vaeUpLevels - 1 - Number(m[1])}.upsamplers.0.`, leaves: VAE_RESAMPLER, rest: m[2]! }),
  },
  { pattern: /^(.+)$/, place: (m) => ({ prefix: "", leaves: VAE_TOP, rest: m[1]! }) },
];

const TEXT_BLOCKS: readonly BlockRule[] = [
  // CLIPTextModel's own names; checkpoints saved with transformers < 4.20 lack the text_model. level.
  { pattern: /^text_model\.(.+)$/, place: (m) => ({ prefix: "text_model.", leaves: SAME, rest: m[1]! }) },
  { pattern: /^((?:embeddings|encoder|final_layer_norm)\..+)$/, place: (m) => ({ prefix: "text_model.", leaves: SAME, rest: m[1]! }) },
];

const BLOCKS: Readonly<Record<Component, readonly BlockRule[]>> = { unet: UNET_BLOCKS, vae: VAE_BLOCKS, textEncoder: TEXT_BLOCKS };

/** One tensor of a single-file checkpoint under its diffusers name. */
export interface MappedName {
  /** Name in the file, with the component prefix. */
  readonly stored: string;
  /** diffusers name inside the component. */
  readonly name: string;
  /** The stored 1x1 conv weight is a Linear weight in diffusers: drop the trailing [1,1]. */
  readonly squeeze: boolean;
}

/** The running-index layout of a file, read from its key names. */
function readLayout(keys: readonly string[]): Layout {
  let firstDownsampler = Infinity, lastInput = 0;
  const decoderUp = new Set<string>();
  for (const k of keys) {
    const input = /^model\.diffusion_model\.input_blocks\.(\d+)\.(0\.op\.)?/.exec(k);
    if (input) {
      lastInput = Math.max(lastInput, Number(input[1]));
      if (input[2]) firstDownsampler = Math.min(firstDownsampler, Number(input[1]));
    }
    const up = /^first_stage_model\.decoder\.up\.(\d+)\./.exec(k);
    if (up) decoderUp.add(up[1]!);
  }
  // Without a downsampler the UNet has a single level: every input block after conv_in is a layer of it.
  const layersPerBlock = Number.isFinite(firstDownsampler) ? firstDownsampler - 1 : lastInput;
  return { layersPerBlock: Math.max(1, layersPerBlock), vaeUpLevels: decoderUp.size };
}

function translate(component: Component, name: string, layout: Layout): { name: string; squeeze: boolean } | undefined {
  for (const rule of BLOCKS[component]) {
    const m = name.match(rule.pattern);
    if (!m) continue;
    // A rule that matches but cannot place the name hands it on (input_blocks.0 is conv_in, in the top table).
    const placed = rule.place(m, layout);
    const leaf = placed?.leaves.find(([from]) => placed.rest.startsWith(from));
    if (!placed || !leaf) continue;
    const [from, to, reshape] = leaf;
    const tail = placed.rest.slice(from.length);
    return { name: placed.prefix + to + tail, squeeze: reshape === "squeeze-1x1" && tail === "weight" };
  }
  return undefined;
}

/**
 * Translates the stored names of one component of a single-file SD1 checkpoint. Names under the component's prefix
 * that have no diffusers counterpart mean another architecture, and raise CheckpointError naming the key.
 */
export function mapLdmNames(component: Component, storedKeys: readonly string[], origin: string): MappedName[] {
  const prefix = LDM_PREFIXES[component];
  const layout = readLayout(storedKeys);
  const out: MappedName[] = [];
  const seen = new Map<string, string>();
  for (const stored of storedKeys) {
    if (!stored.startsWith(prefix)) continue;
    const inner = stored.slice(prefix.length);
    if (NOT_PARAMETERS[component].some((re) => re.test(inner))) continue;
    const t = translate(component, inner, layout);
    if (!t) {
      throw new CheckpointError(
        `${origin}: "${stored}" has no counterpart in the Stable Diffusion 1.x ${COMPONENT_NAMES[component]} ` +
          `(diffusers layout); the checkpoint is of another architecture or was altered`,
      );
    }
    const earlier = seen.get(t.name);
    if (earlier !== undefined) {
      throw new CheckpointError(`${origin}: "${earlier}" and "${stored}" both map to the diffusers tensor "${t.name}"; the checkpoint is corrupt`);
    }
    seen.set(t.name, stored);
    out.push({ stored, name: t.name, squeeze: t.squeeze });
  }
  return out;
}

/** Shape as diffusers sees it: a [C,C,1,1] attention conv weight becomes [C,C]; anything else is kept. */
export function mappedShape(m: MappedName, stored: readonly number[]): readonly number[] {
  return m.squeeze && stored.length === 4 && stored[2] === 1 && stored[3] === 1 ? stored.slice(0, 2) : stored;
}

/** Where a diffusers-named tensor is stored. */
export interface TensorRef {
  readonly file: SafetensorsFile;
  /** Name in the file. */
  readonly stored: string;
  /** Shape under the diffusers name (same element count and order as stored). */
  readonly shape: readonly number[];
}

/**
 * A WeightSource over tensors of one or more safetensors files under diffusers names. Only the headers are
 * consulted until `float32` is called; renaming and squeezing never touch tensor data.
 */
export class RenamedWeights implements WeightSource {
  constructor(readonly origin: string, private readonly table: ReadonlyMap<string, TensorRef>) {}

  keys(): string[] {
    return [...this.table.keys()];
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  shape(name: string): readonly number[] {
    return this.ref(name).shape;
  }

  dtype(name: string): Dtype {
    const r = this.ref(name);
    return r.file.info(r.stored).dtype;
  }

  float32(name: string): Float32Array {
    const r = this.ref(name);
    return r.file.float32(r.stored);
  }

  /** "file: stored name" of a tensor, for messages that the user can match against their file. */
  locate(name: string): string {
    const r = this.ref(name);
    return r.stored === name ? `${r.file.path}: "${name}"` : `${r.file.path}: "${r.stored}" (diffusers "${name}")`;
  }

  private ref(name: string): TensorRef {
    const r = this.table.get(name);
    if (!r) throw new CheckpointError(`${this.origin}: missing tensor "${name}"; the checkpoint is incomplete or of another architecture`);
    return r;
  }
}

/** One component of a single-file SD1 checkpoint as a lazily read, diffusers-named WeightSource. */
export function ldmComponentWeights(file: SafetensorsFile, component: Component): RenamedWeights {
  const table = new Map<string, TensorRef>();
  for (const m of mapLdmNames(component, file.keys(), file.path)) {
    table.set(m.name, { file, stored: m.stored, shape: mappedShape(m, file.info(m.stored).shape) });
  }
  return new RenamedWeights(`${file.path} (${COMPONENT_NAMES[component]}, ${LDM_PREFIXES[component]}*)`, table);
}

/** The same translation on a bare {stored name: shape} map (a header, or a synthetic one in tests). */
export function mapLdmShapes(component: Component, shapes: ReadonlyMap<string, readonly number[]>, origin: string): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  for (const m of mapLdmNames(component, [...shapes.keys()], origin)) out.set(m.name, mappedShape(m, shapes.get(m.stored)!));
  return out;
}
