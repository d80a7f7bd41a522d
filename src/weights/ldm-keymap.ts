import { CheckpointError } from "../errors.js";
import type { ModelFamily } from "../configs/pipeline.js";
import type { Dtype } from "./safetensors.js";
import type { TensorFile } from "./tensor-file.js";
import { transpose2d } from "./transpose.js";
import type { WeightSource } from "./weight-source.js";

/**
 * Name translation from the original single-file layouts (CompVis/Stability "LDM" and "SGM" checkpoints:
 * `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.*`, `conditioner.embedders.*`) to diffusers
 * and transformers names, for Stable Diffusion 1.x, 2.x and XL. Every rename lives in the tables below; the code
 * around them only places a block at its level and layer, which the LDM layout encodes as one running index.
 */

/**
 * The networks of a checkpoint. `textEncoder` is the pipeline's first (or only) text encoder and `textEncoder2` the
 * second one of SDXL base (diffusers' text_encoder_2/); the SDXL refiner's only encoder is its `textEncoder`.
 */
export type Component = "unet" | "vae" | "textEncoder" | "textEncoder2" | "controlnet";

/**
 * How a part's names are written: the UNet, the VAE, a transformers CLIPTextModel, an OpenCLIP text tower, or
 * lllyasviel's ControlNet (the UNet's input and middle blocks plus input_hint_block, zero_convs, middle_block_out).
 */
export type LdmLayout = "unet" | "vae" | "clip" | "open-clip" | "controlnet";

/** One network of a single-file checkpoint: where it lives and in which naming. */
export interface LdmPart {
  readonly component: Component;
  readonly prefix: string;
  readonly layout: LdmLayout;
}

/** The components a checkpoint holds (a ControlNet is a file of its own). */
export type CheckpointComponent = Exclude<Component, "controlnet">;

/** One network of a single-file checkpoint. */
export interface CheckpointPart extends LdmPart {
  readonly component: CheckpointComponent;
}

const UNET_PART: CheckpointPart = { component: "unet", prefix: "model.diffusion_model.", layout: "unet" };
const VAE_PART: CheckpointPart = { component: "vae", prefix: "first_stage_model.", layout: "vae" };

/**
 * Where each family keeps its networks in a single file. SD2 stores OpenCLIP ViT-H as OpenCLIP saves it (fused
 * attention projections); SDXL's conditioner holds CLIP ViT-L as a transformers model and OpenCLIP ViT-bigG as OpenCLIP
 * saves it; the refiner has only the bigG tower, as its first embedder.
 */
export const LDM_PARTS: Readonly<Record<ModelFamily, readonly CheckpointPart[]>> = {
  sd1: [UNET_PART, VAE_PART, { component: "textEncoder", prefix: "cond_stage_model.transformer.", layout: "clip" }],
  sd2: [UNET_PART, VAE_PART, { component: "textEncoder", prefix: "cond_stage_model.model.", layout: "open-clip" }],
  sdxl: [
    UNET_PART,
    VAE_PART,
    { component: "textEncoder", prefix: "conditioner.embedders.0.transformer.", layout: "clip" },
    { component: "textEncoder2", prefix: "conditioner.embedders.1.model.", layout: "open-clip" },
  ],
  "sdxl-refiner": [
    UNET_PART,
    VAE_PART,
    { component: "textEncoder", prefix: "conditioner.embedders.0.model.", layout: "open-clip" },
  ],
};

/** The part of a family's file that holds a component (undefined: the family has no such network). */
export function ldmPart(family: ModelFamily, component: Component): CheckpointPart | undefined {
  return LDM_PARTS[family].find((p) => p.component === component);
}

const LAYOUT_NAMES: Readonly<Record<LdmLayout, string>> = {
  unet: "UNet",
  vae: "VAE",
  clip: "CLIP text encoder",
  "open-clip": "OpenCLIP text encoder",
  controlnet: "ControlNet",
};

/**
 * Where a single-file ControlNet keeps its tensors: under `control_model.` as lllyasviel's ControlNet 1.0 files (and
 * their safetensors conversions) have it, or at the top level as ControlNet 1.1 files do.
 */
export function controlNetPart(keys: readonly string[]): LdmPart {
  const prefix = keys.some((k) => k.startsWith(CONTROL_PREFIX)) ? CONTROL_PREFIX : "";
  return { component: "controlnet", prefix, layout: "controlnet" };
}
const CONTROL_PREFIX = "control_model.";

/**
 * Tensors under a part's prefix that are not parameters of the diffusers model. They are dropped from both
 * layouts so that the two give the same key set and parameter count.
 */
const NOT_PARAMETERS: Readonly<Record<LdmLayout, readonly RegExp[]>> = {
  unet: [],
  // LDM training kept the discriminator and LPIPS weights under loss.*; some merged checkpoints still carry them.
  vae: [/^loss\./],
  // A constant 0..76 buffer, not a weight; some fp16 conversions even stored it as rounded floats.
  clip: [/^text_model\.embeddings\.position_ids$/, /^embeddings\.position_ids$/],
  // CLIP's contrastive temperature belongs to the image-text model, not to the text tower.
  "open-clip": [/^logit_scale$/],
  controlnet: [],
};

const DIFFUSERS_LAYOUT: Readonly<Record<Component, LdmLayout>> = {
  unet: "unet",
  vae: "vae",
  textEncoder: "clip",
  textEncoder2: "clip",
  controlnet: "controlnet",
};

/** Buffers a diffusers/transformers component file may carry beside its parameters (older exports). */
export function isDiffusersBuffer(component: Component, name: string): boolean {
  return NOT_PARAMETERS[DIFFUSERS_LAYOUT[component]].some((re) => re.test(name));
}

/**
 * How a stored tensor becomes its diffusers tensor(s): a 1x1 conv weight is a Linear weight ([C,C,1,1] -> [C,C],
 * same data); OpenCLIP's fused attention input projection [3D, D] is q, k and v stacked by rows; OpenCLIP's
 * text_projection is used as x @ P, transformers' text_projection.weight is its transpose.
 */
export type Reshape = "squeeze-1x1" | "split-qkv" | "transpose";

/** One leaf rename: the first `from` that starts the remaining name is replaced by `to`. */
export type Leaf = readonly [from: string, to: string, reshape?: Reshape];

export const SAME: readonly Leaf[] = [["", ""]];

export const UNET_TOP: readonly Leaf[] = [
  ["time_embed.0.", "time_embedding.linear_1."],
  ["time_embed.2.", "time_embedding.linear_2."],
  // SDXL's size/crop/pooled-text embedding (the SGM UNet's "label_emb", a Sequential of Linear, SiLU, Linear).
  ["label_emb.0.0.", "add_embedding.linear_1."],
  ["label_emb.0.2.", "add_embedding.linear_2."],
  // LCM's guidance embedding has no original-layout name: diffusers' diffusers->LDM script writes it under its
  // diffusers name, and that is the only name such files carry (diffusers' own loader leaves it unloaded).
  ["time_embedding.cond_proj.", "time_embedding.cond_proj."],
  ["input_blocks.0.0.", "conv_in."],
  ["out.0.", "conv_norm_out."],
  ["out.2.", "conv_out."],
];

export const UNET_RESNET: readonly Leaf[] = [
  ["in_layers.0.", "norm1."],
  ["in_layers.2.", "conv1."],
  ["emb_layers.1.", "time_emb_proj."],
  ["out_layers.0.", "norm2."],
  ["out_layers.3.", "conv2."],
  ["skip_connection.", "conv_shortcut."],
];

// The spatial transformer already uses diffusers' names inside (the diffusers module was modelled on it).
export const UNET_ATTENTION: readonly Leaf[] = [
  ["norm.", "norm."],
  ["proj_in.", "proj_in."],
  ["proj_out.", "proj_out."],
  ["transformer_blocks.", "transformer_blocks."],
];

export const UNET_DOWNSAMPLER: readonly Leaf[] = [["op.", "conv."]];
export const UNET_UPSAMPLER: readonly Leaf[] = [["conv.", "conv."]];

export const VAE_TOP: readonly Leaf[] = [
  ["quant_conv.", "quant_conv."],
  ["post_quant_conv.", "post_quant_conv."],
  ["encoder.conv_in.", "encoder.conv_in."],
  ["encoder.norm_out.", "encoder.conv_norm_out."],
  ["encoder.conv_out.", "encoder.conv_out."],
  ["decoder.conv_in.", "decoder.conv_in."],
  ["decoder.norm_out.", "decoder.conv_norm_out."],
  ["decoder.conv_out.", "decoder.conv_out."],
];

export const VAE_RESNET: readonly Leaf[] = [
  ["norm1.", "norm1."],
  ["conv1.", "conv1."],
  ["norm2.", "norm2."],
  ["conv2.", "conv2."],
  ["nin_shortcut.", "conv_shortcut."],
];

// The LDM VAE attention uses 1x1 convolutions where diffusers uses Linear layers: same numbers, shape [C,C,1,1].
export const VAE_ATTENTION: readonly Leaf[] = [
  ["q.", "to_q.", "squeeze-1x1"],
  ["k.", "to_k.", "squeeze-1x1"],
  ["v.", "to_v.", "squeeze-1x1"],
  ["proj_out.", "to_out.0.", "squeeze-1x1"],
  ["norm.", "group_norm."],
];

export const VAE_RESAMPLER: readonly Leaf[] = [["conv.", "conv."]];

/** Where a running-index UNet block sits in the diffusers tree. */
type BlockPlace = { level: number; layer: number } | { level: number; downsampler: true };

/** Structural facts of the file that the running block indices depend on, read from its key names. */
interface Layout {
  /** input_blocks index -> level and layer (or the level's downsampler); levels may differ in their layer counts. */
  input: ReadonlyMap<number, BlockPlace>;
  /** output_blocks index -> up level and layer. */
  output: ReadonlyMap<number, { level: number; layer: number }>;
  /** VAE decoder levels: the LDM decoder numbers them bottom-up, diffusers top-down. */
  vaeUpLevels: number;
  /** The ControlNet's input_hint_block index of its last conv (conv_out); -1 for other layouts. */
  hintLast: number;
}

/** A block rule places a matched block in the diffusers tree and says how to rename what is inside it. */
interface BlockRule {
  readonly pattern: RegExp;
  readonly place: (
    m: RegExpMatchArray,
    layout: Layout,
  ) => { prefix: string; leaves: readonly Leaf[]; rest: string } | undefined;
}

/** The input and middle blocks: the encoder half, which a ControlNet shares with the UNet. */
const UNET_ENCODER_BLOCKS: readonly BlockRule[] = [
  {
    // input_blocks.N (N >= 1): .0 ResNet and .1 transformer of a layer, or .0.op, the level's downsampler.
    pattern: /^input_blocks\.(\d+)\.(\d+)\.(.+)$/,
    place: (m, { input }) => {
      const at = input.get(Number(m[1])),
        sub = Number(m[2]),
        rest = m[3]!;
      if (!at) return undefined;
      if ("downsampler" in at)
        return sub === 0
          ? { prefix: `down_blocks.${at.level}.downsamplers.0.`, leaves: UNET_DOWNSAMPLER, rest }
          : undefined;
      if (sub === 0) return { prefix: `down_blocks.${at.level}.resnets.${at.layer}.`, leaves: UNET_RESNET, rest };
      if (sub === 1) return { prefix: `down_blocks.${at.level}.attentions.${at.layer}.`, leaves: UNET_ATTENTION, rest };
      return undefined;
    },
  },
  {
    pattern: /^middle_block\.([0-2])\.(.+)$/,
    place: (m) => {
      const rest = m[2]!;
      switch (m[1]) {
        case "0":
          return { prefix: "mid_block.resnets.0.", leaves: UNET_RESNET, rest };
        case "1":
          return { prefix: "mid_block.attentions.0.", leaves: UNET_ATTENTION, rest };
        default:
          return { prefix: "mid_block.resnets.1.", leaves: UNET_RESNET, rest };
      }
    },
  },
];

const UNET_BLOCKS: readonly BlockRule[] = [
  ...UNET_ENCODER_BLOCKS,
  {
    // output_blocks.N: .0 ResNet, then the transformer if the level has one, then the upsampler (a `conv`) in the
    // level's last block, so the upsampler is .1 or .2 depending on the level.
    pattern: /^output_blocks\.(\d+)\.(\d+)\.(.+)$/,
    place: (m, { output }) => {
      const at = output.get(Number(m[1])),
        sub = Number(m[2]),
        rest = m[3]!;
      if (!at) return undefined;
      if (sub === 0) return { prefix: `up_blocks.${at.level}.resnets.${at.layer}.`, leaves: UNET_RESNET, rest };
      if (rest.startsWith("conv."))
        return { prefix: `up_blocks.${at.level}.upsamplers.0.`, leaves: UNET_UPSAMPLER, rest };
      if (sub === 1) return { prefix: `up_blocks.${at.level}.attentions.${at.layer}.`, leaves: UNET_ATTENTION, rest };
      return undefined;
    },
  },
  { pattern: /^(.+)$/, place: (m) => ({ prefix: "", leaves: UNET_TOP, rest: m[1]! }) },
];

/**
 * lllyasviel's ControlNet around the UNet's encoder names: input_hint_block is a Sequential of convs and SiLUs (even
 * indices are convs: 0 = conv_in, 2(j+1) = blocks.j, the last = conv_out), zero_convs.N.0 are the skip connections'
 * 1x1 convs and middle_block_out.0 the mid block's.
 */
const CONTROLNET_BLOCKS: readonly BlockRule[] = [
  {
    pattern: /^input_hint_block\.(\d+)\.(.+)$/,
    place: (m, { hintLast }) => {
      const i = Number(m[1]),
        rest = m[2]!;
      if (i % 2 !== 0) return undefined;
      const module = i === 0 ? "conv_in" : i === hintLast ? "conv_out" : `blocks.${i / 2 - 1}`;
      return { prefix: `controlnet_cond_embedding.${module}.`, leaves: SAME, rest };
    },
  },
  {
    pattern: /^zero_convs\.(\d+)\.0\.(.+)$/,
    place: (m) => ({ prefix: `controlnet_down_blocks.${m[1]}.`, leaves: SAME, rest: m[2]! }),
  },
  {
    pattern: /^middle_block_out\.0\.(.+)$/,
    place: (m) => ({ prefix: "controlnet_mid_block.", leaves: SAME, rest: m[1]! }),
  },
  // The UNet's own blocks, but not its up path or output head, which a ControlNet does not have.
  ...UNET_ENCODER_BLOCKS,
  {
    pattern: /^((?:time_embed|label_emb|input_blocks\.0\.0)\..+)$/,
    place: (m) => ({ prefix: "", leaves: UNET_TOP, rest: m[1]! }),
  },
];

const VAE_BLOCKS: readonly BlockRule[] = [
  {
    pattern: /^(encoder|decoder)\.mid\.block_([12])\.(.+)$/,
    place: (m) => ({ prefix: `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.`, leaves: VAE_RESNET, rest: m[3]! }),
  },
  {
    pattern: /^(encoder|decoder)\.mid\.attn_1\.(.+)$/,
    place: (m) => ({ prefix: `${m[1]}.mid_block.attentions.0.`, leaves: VAE_ATTENTION, rest: m[2]! }),
  },
  {
    pattern: /^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/,
    place: (m) => ({ prefix: `encoder.down_blocks.${m[1]}.resnets.${m[2]}.`, leaves: VAE_RESNET, rest: m[3]! }),
  },
  {
    pattern: /^encoder\.down\.(\d+)\.downsample\.(.+)$/,
    place: (m) => ({ prefix: `encoder.down_blocks.${m[1]}.downsamplers.0.`, leaves: VAE_RESAMPLER, rest: m[2]! }),
  },
  {
    pattern: /^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/,
    place: (m, { vaeUpLevels }) => ({
      prefix: `decoder.up_blocks.${vaeUpLevels - 1 - Number(m[1])}.resnets.${m[2]}.`,
      leaves: VAE_RESNET,
      rest: m[3]!,
    }),
  },
  {
    pattern: /^decoder\.up\.(\d+)\.upsample\.(.+)$/,
    place: (m, { vaeUpLevels }) => ({
      prefix: `decoder.up_blocks.${vaeUpLevels - 1 - Number(m[1])}.upsamplers.0.`,
      leaves: VAE_RESAMPLER,
      rest: m[2]!,
    }),
  },
  { pattern: /^(.+)$/, place: (m) => ({ prefix: "", leaves: VAE_TOP, rest: m[1]! }) },
];

const CLIP_BLOCKS: readonly BlockRule[] = [
  // CLIPTextModel's own names; checkpoints saved with transformers < 4.20 lack the text_model. level.
  { pattern: /^text_model\.(.+)$/, place: (m) => ({ prefix: "text_model.", leaves: SAME, rest: m[1]! }) },
  {
    pattern: /^((?:embeddings|encoder|final_layer_norm)\..+)$/,
    place: (m) => ({ prefix: "text_model.", leaves: SAME, rest: m[1]! }),
  },
];

// OpenCLIP's text tower (open_clip.CLIP without its visual tower) in transformers' CLIPTextModel names.
export const OPEN_CLIP_LAYER: readonly Leaf[] = [
  ["ln_1.", "layer_norm1."],
  ["ln_2.", "layer_norm2."],
  ["attn.in_proj_", "self_attn.", "split-qkv"],
  ["attn.out_proj.", "self_attn.out_proj."],
  ["mlp.c_fc.", "mlp.fc1."],
  ["mlp.c_proj.", "mlp.fc2."],
];

export const OPEN_CLIP_TOP: readonly Leaf[] = [
  ["token_embedding.", "text_model.embeddings.token_embedding."],
  ["positional_embedding", "text_model.embeddings.position_embedding.weight"],
  ["ln_final.", "text_model.final_layer_norm."],
  ["text_projection", "text_projection.weight", "transpose"],
];

const OPEN_CLIP_BLOCKS: readonly BlockRule[] = [
  {
    pattern: /^transformer\.resblocks\.(\d+)\.(.+)$/,
    place: (m) => ({ prefix: `text_model.encoder.layers.${m[1]}.`, leaves: OPEN_CLIP_LAYER, rest: m[2]! }),
  },
  { pattern: /^(.+)$/, place: (m) => ({ prefix: "", leaves: OPEN_CLIP_TOP, rest: m[1]! }) },
];

const BLOCKS: Readonly<Record<LdmLayout, readonly BlockRule[]>> = {
  unet: UNET_BLOCKS,
  vae: VAE_BLOCKS,
  clip: CLIP_BLOCKS,
  "open-clip": OPEN_CLIP_BLOCKS,
  controlnet: CONTROLNET_BLOCKS,
};

/** What a stored tensor's data needs to become a diffusers tensor (none for most). */
export type TensorView =
  | { readonly kind: "squeeze" } // [C,C,1,1] conv weight read as a [C,C] Linear weight
  | { readonly kind: "rows"; readonly part: number; readonly of: number } // one of `of` equal row blocks (q, k or v)
  | { readonly kind: "transpose" }; // a 2-D matrix transposed

/** One tensor of a single-file checkpoint under its diffusers name. */
export interface MappedName {
  /** Name in the file, with the part's prefix. */
  readonly stored: string;
  /** diffusers name inside the component. */
  readonly name: string;
  readonly view?: TensorView;
}

/** The running-index layout of a UNet part (names without the prefix) and the VAE decoder's level count. */
function readLayout(part: LdmPart, inner: readonly string[], origin: string): Layout {
  const input = new Map<number, BlockPlace>();
  const output = new Map<number, { level: number; layer: number }>();
  if (part.layout === "unet" || part.layout === "controlnet") {
    // Input blocks run level by level: its layers, then a downsampler (.0.op) that closes the level. Counting
    // them in order handles levels with different layer counts (distilled UNets such as BK-SDM).
    const inputs = new Map<number, boolean>();
    const outputs = new Map<number, boolean>();
    for (const k of inner) {
      const i = /^input_blocks\.(\d+)\.(0\.op\.)?/.exec(k);
      if (i && Number(i[1]) > 0) inputs.set(Number(i[1]), (inputs.get(Number(i[1])) ?? false) || Boolean(i[2]));
      // An output block that holds a conv after its ResNet (and transformer) ends its level with the upsampler.
      const o = /^output_blocks\.(\d+)\.([12])\.conv\./.exec(k) ?? /^output_blocks\.(\d+)\./.exec(k);
      if (o) outputs.set(Number(o[1]), (outputs.get(Number(o[1])) ?? false) || o[0].endsWith(".conv."));
    }
    contiguous([...inputs.keys()], 1, "input_blocks", part, origin);
    contiguous([...outputs.keys()], 0, "output_blocks", part, origin);
    let level = 0,
      layer = 0;
    for (const [index, isDownsampler] of [...inputs].sort((a, b) => a[0] - b[0])) {
      if (isDownsampler) {
        input.set(index, { level, downsampler: true });
        level++;
        layer = 0;
      } else {
        input.set(index, { level, layer: layer++ });
      }
    }
    level = 0;
    layer = 0;
    for (const [index, endsLevel] of [...outputs].sort((a, b) => a[0] - b[0])) {
      output.set(index, { level, layer: layer++ });
      if (endsLevel) {
        level++;
        layer = 0;
      }
    }
  }
  const decoderUp = new Set<string>();
  if (part.layout === "vae") {
    for (const k of inner) {
      const up = /^decoder\.up\.(\d+)\./.exec(k);
      if (up) decoderUp.add(up[1]!);
    }
  }
  let hintLast = -1;
  if (part.layout === "controlnet") {
    for (const k of inner) hintLast = Math.max(hintLast, Number(/^input_hint_block\.(\d+)\./.exec(k)?.[1] ?? -1));
  }
  return { input, output, vaeUpLevels: decoderUp.size, hintLast };
}

/** Running block indices must have no gaps: a missing block would shift every later block to another level. */
function contiguous(indices: number[], first: number, what: string, part: LdmPart, origin: string): void {
  const sorted = [...indices].sort((a, b) => a - b);
  const gap = sorted.findIndex((v, i) => v !== first + i);
  if (gap >= 0) {
    throw new CheckpointError(
      `${origin}: ${part.prefix}${what}.${first + gap}.* is missing (indices run ${first}..${sorted[sorted.length - 1]}); the checkpoint is incomplete`,
    );
  }
}

function translate(part: LdmPart, name: string, layout: Layout): { name: string; view?: TensorView }[] | undefined {
  for (const rule of BLOCKS[part.layout]) {
    const m = name.match(rule.pattern);
    if (!m) continue;
    // A rule that matches but cannot place the name hands it on (input_blocks.0 is conv_in, in the top table).
    const placed = rule.place(m, layout);
    const leaf = placed?.leaves.find(([from]) => placed.rest.startsWith(from));
    if (!placed || !leaf) continue;
    const [from, to, reshape] = leaf;
    const tail = placed.rest.slice(from.length);
    switch (reshape) {
      case "split-qkv":
        // attn.in_proj_weight / in_proj_bias -> self_attn.{q,k,v}_proj.weight / bias
        if (tail !== "weight" && tail !== "bias") return undefined;
        return ["q", "k", "v"].map((p, i) => ({
          name: `${placed.prefix}${to}${p}_proj.${tail}`,
          view: { kind: "rows", part: i, of: 3 } as const,
        }));
      case "transpose":
        return tail === "" ? [{ name: placed.prefix + to, view: { kind: "transpose" } }] : undefined;
      case "squeeze-1x1":
        return [{ name: placed.prefix + to + tail, view: tail === "weight" ? { kind: "squeeze" } : undefined }];
      default:
        // A leaf that names a whole tensor (positional_embedding) matches only that tensor.
        if (to.endsWith(".weight") && tail !== "") return undefined;
        return [{ name: placed.prefix + to + tail }];
    }
  }
  return undefined;
}

/**
 * Translates the stored names of one part of a single-file checkpoint. Names under the part's prefix that have no
 * diffusers counterpart mean another architecture, and raise CheckpointError naming the key.
 */
export function mapLdmNames(part: LdmPart, storedKeys: readonly string[], origin: string): MappedName[] {
  const inner = storedKeys.filter((k) => k.startsWith(part.prefix)).map((k) => k.slice(part.prefix.length));
  const layout = readLayout(part, inner, origin);
  const out: MappedName[] = [];
  const seen = new Map<string, string>();
  for (const name of inner) {
    if (NOT_PARAMETERS[part.layout].some((re) => re.test(name))) continue;
    const stored = part.prefix + name;
    const translated = translate(part, name, layout);
    if (!translated) {
      throw new CheckpointError(
        `${origin}: "${stored}" has no counterpart in the Stable Diffusion ${LAYOUT_NAMES[part.layout]} ` +
          `(diffusers layout); the checkpoint is of another architecture or was altered`,
      );
    }
    for (const t of translated) {
      const earlier = seen.get(t.name);
      if (earlier !== undefined) {
        throw new CheckpointError(
          `${origin}: "${earlier}" and "${stored}" both map to the diffusers tensor "${t.name}"; the checkpoint is corrupt`,
        );
      }
      seen.set(t.name, stored);
      out.push({ stored, name: t.name, view: t.view });
    }
  }
  return out;
}

/** Shape as diffusers sees it, or a CheckpointError when the stored shape cannot take the view. */
export function mappedShape(m: MappedName, stored: readonly number[], origin: string): readonly number[] {
  const bad = (what: string) =>
    new CheckpointError(
      `${origin}: "${m.stored}" has shape [${stored.join(",")}], ${what}; the checkpoint is damaged or of another architecture`,
    );
  switch (m.view?.kind) {
    case undefined:
      return stored;
    case "squeeze":
      return stored.length === 4 && stored[2] === 1 && stored[3] === 1 ? stored.slice(0, 2) : stored;
    case "rows": {
      if (stored.length < 1 || stored[0]! % m.view.of !== 0)
        throw bad(`which does not split into ${m.view.of} equal row blocks (q, k, v)`);
      return [stored[0]! / m.view.of, ...stored.slice(1)];
    }
    case "transpose":
      if (stored.length !== 2) throw bad("expected a matrix");
      return [stored[1]!, stored[0]!];
  }
}

/** Applies a view to a stored tensor's fp32 data (shape as stored). */
function viewData(
  view: TensorView | undefined,
  data: Float32Array,
  stored: readonly number[],
  into?: Float32Array,
): Float32Array {
  switch (view?.kind) {
    case undefined:
    case "squeeze":
      if (!into) return data;
      into.set(data);
      return into;
    case "rows": {
      const size = data.length / view.of;
      const rows = data.subarray(view.part * size, (view.part + 1) * size);
      if (!into) return rows.slice();
      into.set(rows);
      return into;
    }
    case "transpose":
      return transpose2d(data, stored[0]!, stored[1]!, into);
  }
}

/** Where a diffusers-named tensor is stored. */
export interface TensorRef {
  readonly file: TensorFile;
  /** Name in the file. */
  readonly stored: string;
  /** Shape under the diffusers name. */
  readonly shape: readonly number[];
  /** How the stored data becomes the diffusers tensor (absent: as stored). */
  readonly view?: TensorView;
}

/**
 * A WeightSource over tensors of one or more tensor files (safetensors, or torch.save files) under diffusers names. Only the headers are
 * consulted until `float32` is called; renaming and squeezing never touch tensor data.
 */
export class RenamedWeights implements WeightSource {
  constructor(
    readonly origin: string,
    private readonly table: ReadonlyMap<string, TensorRef>,
  ) {}

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

  float32(name: string, into?: Float32Array): Float32Array {
    const r = this.ref(name);
    // A tensor used as stored is read straight into `into`; a view of one is taken from the stored tensor read whole.
    if (r.view === undefined || r.view.kind === "squeeze") return r.file.float32(r.stored, into);
    return viewData(r.view, r.file.float32(r.stored), r.file.info(r.stored).shape, into);
  }

  /** The same source without the tensors `drop` names (ones the pipeline never uses). */
  without(drop: (name: string) => boolean): RenamedWeights {
    return new RenamedWeights(this.origin, new Map([...this.table].filter(([name]) => !drop(name))));
  }

  /** "file: stored name" of a tensor, for messages that the user can match against their file. */
  locate(name: string): string {
    const r = this.ref(name);
    return r.stored === name ? `${r.file.path}: "${name}"` : `${r.file.path}: "${r.stored}" (diffusers "${name}")`;
  }

  private ref(name: string): TensorRef {
    const r = this.table.get(name);
    if (!r)
      throw new CheckpointError(
        `${this.origin}: missing tensor "${name}"; the checkpoint is incomplete or of another architecture`,
      );
    return r;
  }
}

/** One part of a single-file checkpoint as a lazily read, diffusers-named WeightSource. */
export function ldmComponentWeights(file: TensorFile, part: LdmPart): RenamedWeights {
  const table = new Map<string, TensorRef>();
  for (const m of mapLdmNames(part, file.keys(), file.path)) {
    table.set(m.name, {
      file,
      stored: m.stored,
      shape: mappedShape(m, file.info(m.stored).shape, file.path),
      view: m.view,
    });
  }
  return new RenamedWeights(`${file.path} (${LAYOUT_NAMES[part.layout]}, ${part.prefix}*)`, table);
}

/** The same translation on a bare {stored name: shape} map (a header, or a synthetic one in tests). */
export function mapLdmShapes(
  part: LdmPart,
  shapes: ReadonlyMap<string, readonly number[]>,
  origin: string,
): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  for (const m of mapLdmNames(part, [...shapes.keys()], origin))
    out.set(m.name, mappedShape(m, shapes.get(m.stored)!, origin));
  return out;
}

/** The parts of a UNet config that place its blocks in the original layout's running indices. */
export interface UnetBlockLayout {
  readonly layersPerBlock: readonly number[];
  readonly upBlockTypes: readonly string[];
}

/**
 * The original-layout (LDM/SGM) path of each diffusers UNet module path, for names written in that layout outside
 * a checkpoint (kohya's SDXL LoRAs name modules like "input_blocks.4.1.transformer_blocks.0.attn1.to_q"): the
 * inverse of the UNet rules above, through the same leaf tables, with the running block indices placed from the
 * config (a LoRA names only some blocks, so its names cannot say where levels end). Paths the rules do not cover
 * are left out.
 */
export function ldmUnetModulePaths(config: UnetBlockLayout, modules: Iterable<string>): Map<string, string> {
  const levels = config.layersPerBlock.length;
  const input = new Map<string, number>();
  let index = 1;
  for (let l = 0; l < levels; l++) {
    for (let j = 0; j < config.layersPerBlock[l]!; j++) input.set(`${l}.${j}`, index++);
    if (l < levels - 1) input.set(`${l}.down`, index++);
  }
  const upLayers = [...config.layersPerBlock].reverse().map((n) => n + 1);
  const output = new Map<string, number>();
  index = 0;
  for (let l = 0; l < levels; l++) for (let j = 0; j < upLayers[l]!; j++) output.set(`${l}.${j}`, index++);
  const invert = (leaves: readonly Leaf[], rest: string): string | undefined => {
    const leaf = leaves.find(([, to]) => rest.startsWith(to));
    return leaf ? leaf[0] + rest.slice(leaf[1].length) : undefined;
  };
  const place = (path: string): string | undefined => {
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/))) {
      const at = input.get(`${m[1]}.${m[3]}`);
      const rest = invert(m[2] === "resnets" ? UNET_RESNET : UNET_ATTENTION, m[4]!);
      return at === undefined || rest === undefined
        ? undefined
        : `input_blocks.${at}.${m[2] === "resnets" ? 0 : 1}.${rest}`;
    }
    if ((m = path.match(/^down_blocks\.(\d+)\.downsamplers\.0\.(.+)$/))) {
      const at = input.get(`${m[1]}.down`);
      const rest = invert(UNET_DOWNSAMPLER, m[2]!);
      return at === undefined || rest === undefined ? undefined : `input_blocks.${at}.0.${rest}`;
    }
    if ((m = path.match(/^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$/))) {
      const block = m[1] === "attentions" ? 1 : m[2] === "0" ? 0 : 2;
      const rest = invert(m[1] === "resnets" ? UNET_RESNET : UNET_ATTENTION, m[3]!);
      return rest === undefined ? undefined : `middle_block.${block}.${rest}`;
    }
    if ((m = path.match(/^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/))) {
      const at = output.get(`${m[1]}.${m[3]}`);
      const rest = invert(m[2] === "resnets" ? UNET_RESNET : UNET_ATTENTION, m[4]!);
      return at === undefined || rest === undefined
        ? undefined
        : `output_blocks.${at}.${m[2] === "resnets" ? 0 : 1}.${rest}`;
    }
    if ((m = path.match(/^up_blocks\.(\d+)\.upsamplers\.0\.(.+)$/))) {
      const level = Number(m[1]);
      const at = output.get(`${level}.${upLayers[level]! - 1}`);
      const sub = config.upBlockTypes[level] === "CrossAttnUpBlock2D" ? 2 : 1;
      const rest = invert(UNET_UPSAMPLER, m[2]!);
      return at === undefined || rest === undefined ? undefined : `output_blocks.${at}.${sub}.${rest}`;
    }
    return invert(UNET_TOP, path);
  };
  const out = new Map<string, string>();
  for (const module of modules) {
    const ldm = place(`${module}.`);
    if (ldm !== undefined) out.set(module, ldm.slice(0, -1));
  }
  return out;
}
