import { InternalError } from "../errors.js";
import {
  mapLdmNames,
  mappedShape,
  OPEN_CLIP_LAYER,
  OPEN_CLIP_TOP,
  SAME,
  UNET_ATTENTION,
  UNET_DOWNSAMPLER,
  UNET_RESNET,
  UNET_TOP,
  UNET_UPSAMPLER,
  VAE_ATTENTION,
  VAE_RESAMPLER,
  VAE_RESNET,
  VAE_TOP,
  type LdmPart,
  type Leaf,
  type TensorView,
} from "./ldm-keymap.js";
import { transpose2d } from "./transpose.js";
import type { WeightSource } from "./weight-source.js";

/**
 * The key map of ldm-keymap.ts run backwards: one network's diffusers-named tensors under the names, shapes and
 * data they have in a single file of the original (LDM/SGM) layout, as the published checkpoints store them. The
 * rename tables are ldm-keymap's own; what is written here is only the inverse of its block placement (the running
 * indices of the UNet's input and output blocks, the VAE decoder's bottom-up levels). Every result is mapped forward
 * again before it is returned, so the two directions cannot disagree. Used to write full-size checkpoints in the
 * published layout (the benchmarks' random-weight models).
 */

/** One tensor of a single file in the original layout and the diffusers tensors it holds. */
export interface StoredTensor {
  /** Name in the file, with the part's prefix. */
  readonly stored: string;
  /** Shape in the file. */
  readonly shape: readonly number[];
  /**
   * The diffusers tensors it holds, in storage order (q, k, v of OpenCLIP's fused projection), each with the view
   * that the forward map reads it through.
   */
  readonly parts: readonly { readonly name: string; readonly view?: TensorView }[];
}

/** Where a diffusers name sits in the original layout: a block prefix, and the leaf renames inside that block. */
interface Unplaced {
  prefix: string;
  leaves: readonly Leaf[];
  rest: string;
}

type Unplace = (name: string) => Unplaced | undefined;

/**
 * The original-layout tensors of one network given as diffusers names and shapes (e.g. what a builder declares,
 * models/param-shapes.ts), in the order the names come. Names without an original-layout counterpart are an
 * InternalError: the caller asked for a network that the part does not describe.
 */
export function ldmStoredTensors(part: LdmPart, shapes: ReadonlyMap<string, readonly number[]>): StoredTensor[] {
  const names = [...shapes.keys()];
  if (part.layout === "controlnet")
    throw new InternalError(
      "writing a ControlNet in the published single-file layout is not supported (write its diffusers folder)",
    );
  const unplace = UNPLACE[part.layout](names);
  const byStored = new Map<string, { name: string; view?: TensorView }[]>();
  for (const name of names) {
    const u = unplace(name);
    const leaf = u && unleaf(u);
    if (!leaf) throw new InternalError(`"${name}" has no name in the original layout of ${part.prefix}*`);
    const stored = part.prefix + leaf.stored;
    byStored.set(stored, [...(byStored.get(stored) ?? []), { name, ...(leaf.view ? { view: leaf.view } : {}) }]);
  }
  const out: StoredTensor[] = [];
  for (const [stored, parts] of byStored) {
    parts.sort((a, b) => rowPart(a.view) - rowPart(b.view));
    out.push({ stored, shape: storedShape(stored, parts, shapes), parts });
  }
  checkRoundTrip(part, out, shapes);
  return out;
}

/** A stored tensor's fp32 data, made from its diffusers tensors in `source` (the inverse of the forward views). */
export function storedTensorData(t: StoredTensor, source: WeightSource): Float32Array {
  const first = t.parts[0]!;
  switch (first.view?.kind) {
    case undefined:
    case "squeeze":
      return source.float32(first.name);
    case "transpose": {
      const [rows, cols] = source.shape(first.name) as [number, number];
      return transpose2d(source.float32(first.name), rows, cols);
    }
    case "rows": {
      const blocks = t.parts.map((p) => source.float32(p.name));
      const out = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of blocks) {
        out.set(b, at);
        at += b.length;
      }
      return out;
    }
  }
}

function rowPart(view: TensorView | undefined): number {
  return view?.kind === "rows" ? view.part : 0;
}

function storedShape(
  stored: string,
  parts: readonly { name: string; view?: TensorView }[],
  shapes: ReadonlyMap<string, readonly number[]>,
): readonly number[] {
  const shape = shapes.get(parts[0]!.name)!;
  const view = parts[0]!.view;
  switch (view?.kind) {
    case undefined:
      return shape;
    case "squeeze":
      // The LDM VAE's attention projections are 1x1 convolutions.
      return [...shape, 1, 1];
    case "transpose":
      return [shape[1]!, shape[0]!];
    case "rows": {
      const same = parts.every((p) => shapes.get(p.name)!.join() === shape.join());
      if (parts.length !== view.of || !same) {
        throw new InternalError(
          `"${stored}" stacks ${view.of} equal row blocks but gets ${parts.map((p) => `${p.name} [${shapes.get(p.name)!.join(",")}]`).join(", ")}`,
        );
      }
      return [view.of * shape[0]!, ...shape.slice(1)];
    }
  }
}

/** The leaf rename whose diffusers side (`to`) begins the name, the longest one when several do. */
function unleaf(u: Unplaced): { stored: string; view?: TensorView } | undefined {
  const matches = u.leaves.filter(([, to]) => u.rest.startsWith(to)).sort((a, b) => b[1].length - a[1].length);
  for (const [from, to, reshape] of matches) {
    const tail = u.rest.slice(to.length);
    switch (reshape) {
      case "split-qkv": {
        const m = /^([qkv])_proj\.(weight|bias)$/.exec(tail);
        if (m)
          return { stored: `${u.prefix}${from}${m[2]}`, view: { kind: "rows", part: "qkv".indexOf(m[1]!), of: 3 } };
        continue;
      }
      case "transpose":
        if (tail === "") return { stored: u.prefix + from, view: { kind: "transpose" } };
        continue;
      case "squeeze-1x1":
        return { stored: u.prefix + from + tail, ...(tail === "weight" ? { view: { kind: "squeeze" } as const } : {}) };
      default:
        // A leaf that names a whole tensor (OpenCLIP's positional_embedding) takes only that tensor.
        if (to.endsWith(".weight") && tail !== "") continue;
        return { stored: u.prefix + from + tail };
    }
  }
  return undefined;
}

/** Distinct values of the first capture group, ascending. */
function indices(names: readonly string[], re: RegExp): number[] {
  const out = new Set<number>();
  for (const n of names) {
    const m = re.exec(n);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The UNet's running block indices from its diffusers tree: input block 0 is conv_in, then each down level's
 * layers and its downsampler; output blocks count every up level's layers from 0, the level's upsampler sitting in
 * its last block after the ResNet (and the transformer, if the layer has one).
 */
function unplaceUNet(names: readonly string[]): Unplace {
  const input = new Map<string, number>();
  const downsampler = new Map<number, number>();
  let index = 1;
  for (const level of indices(names, /^down_blocks\.(\d+)\./)) {
    for (const layer of indices(names, new RegExp(`^down_blocks\\.${level}\\.resnets\\.(\\d+)\\.`)))
      input.set(`${level}.${layer}`, index++);
    if (names.some((n) => n.startsWith(`down_blocks.${level}.downsamplers.0.`))) downsampler.set(level, index++);
  }
  const output = new Map<string, number>();
  const upsampler = new Map<number, string>();
  index = 0;
  for (const level of indices(names, /^up_blocks\.(\d+)\./)) {
    const layers = indices(names, new RegExp(`^up_blocks\\.${level}\\.resnets\\.(\\d+)\\.`));
    for (const layer of layers) output.set(`${level}.${layer}`, index++);
    const last = layers[layers.length - 1]!;
    const attended = names.some((n) => n.startsWith(`up_blocks.${level}.attentions.${last}.`));
    upsampler.set(level, `output_blocks.${output.get(`${level}.${last}`)}.${attended ? 2 : 1}.`);
  }
  const MID = ["middle_block.0.", "middle_block.1.", "middle_block.2."];
  return (name) => {
    let m: RegExpExecArray | null;
    const at = (map: ReadonlyMap<string, number>, key: string) => map.get(key);
    if ((m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(name))) {
      const i = at(input, `${m[1]}.${m[3]}`);
      return i === undefined
        ? undefined
        : m[2] === "resnets"
          ? { prefix: `input_blocks.${i}.0.`, leaves: UNET_RESNET, rest: m[4]! }
          : { prefix: `input_blocks.${i}.1.`, leaves: UNET_ATTENTION, rest: m[4]! };
    }
    if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.(.+)$/.exec(name))) {
      const i = downsampler.get(Number(m[1]));
      return i === undefined ? undefined : { prefix: `input_blocks.${i}.0.`, leaves: UNET_DOWNSAMPLER, rest: m[2]! };
    }
    if ((m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(name))) {
      const i = at(output, `${m[1]}.${m[3]}`);
      return i === undefined
        ? undefined
        : m[2] === "resnets"
          ? { prefix: `output_blocks.${i}.0.`, leaves: UNET_RESNET, rest: m[4]! }
          : { prefix: `output_blocks.${i}.1.`, leaves: UNET_ATTENTION, rest: m[4]! };
    }
    if ((m = /^up_blocks\.(\d+)\.upsamplers\.0\.(.+)$/.exec(name))) {
      const prefix = upsampler.get(Number(m[1]));
      return prefix === undefined ? undefined : { prefix, leaves: UNET_UPSAMPLER, rest: m[2]! };
    }
    if ((m = /^mid_block\.resnets\.([01])\.(.+)$/.exec(name)))
      return { prefix: MID[m[1] === "0" ? 0 : 2]!, leaves: UNET_RESNET, rest: m[2]! };
    if ((m = /^mid_block\.attentions\.0\.(.+)$/.exec(name)))
      return { prefix: MID[1]!, leaves: UNET_ATTENTION, rest: m[1]! };
    return { prefix: "", leaves: UNET_TOP, rest: name };
  };
}

/** The VAE: the LDM decoder numbers its levels bottom-up, diffusers top-down. */
function unplaceVae(names: readonly string[]): Unplace {
  const upLevels = indices(names, /^decoder\.up_blocks\.(\d+)\./).length;
  return (name) => {
    let m: RegExpExecArray | null;
    if ((m = /^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)$/.exec(name)))
      return { prefix: `${m[1]}.mid.block_${Number(m[2]) + 1}.`, leaves: VAE_RESNET, rest: m[3]! };
    if ((m = /^(encoder|decoder)\.mid_block\.attentions\.0\.(.+)$/.exec(name)))
      return { prefix: `${m[1]}.mid.attn_1.`, leaves: VAE_ATTENTION, rest: m[2]! };
    if ((m = /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(name)))
      return { prefix: `encoder.down.${m[1]}.block.${m[2]}.`, leaves: VAE_RESNET, rest: m[3]! };
    if ((m = /^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)$/.exec(name)))
      return { prefix: `encoder.down.${m[1]}.downsample.`, leaves: VAE_RESAMPLER, rest: m[2]! };
    if ((m = /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(name)))
      return { prefix: `decoder.up.${upLevels - 1 - Number(m[1])}.block.${m[2]}.`, leaves: VAE_RESNET, rest: m[3]! };
    if ((m = /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)$/.exec(name)))
      return { prefix: `decoder.up.${upLevels - 1 - Number(m[1])}.upsample.`, leaves: VAE_RESAMPLER, rest: m[2]! };
    return { prefix: "", leaves: VAE_TOP, rest: name };
  };
}

const UNPLACE: Readonly<Record<Exclude<LdmPart["layout"], "controlnet">, (names: readonly string[]) => Unplace>> = {
  unet: unplaceUNet,
  vae: unplaceVae,
  // transformers' CLIPTextModel keeps its own names in the single file.
  clip: () => (name) => (name.startsWith("text_model.") ? { prefix: "", leaves: SAME, rest: name } : undefined),
  "open-clip": () => (name) => {
    const m = /^text_model\.encoder\.layers\.(\d+)\.(.+)$/.exec(name);
    return m
      ? { prefix: `transformer.resblocks.${m[1]}.`, leaves: OPEN_CLIP_LAYER, rest: m[2]! }
      : { prefix: "", leaves: OPEN_CLIP_TOP, rest: name };
  },
};

/** The stored names, read by the forward map, must give back exactly the diffusers names and shapes asked for. */
function checkRoundTrip(
  part: LdmPart,
  stored: readonly StoredTensor[],
  shapes: ReadonlyMap<string, readonly number[]>,
): void {
  const storedShapes = new Map(stored.map((t) => [t.stored, t.shape] as const));
  const views = new Map(stored.flatMap((t) => t.parts.map((p) => [p.name, JSON.stringify(p.view ?? null)] as const)));
  const back = mapLdmNames(part, [...storedShapes.keys()], "the reverse key map");
  const seen = new Set<string>();
  for (const m of back) {
    const want = shapes.get(m.name);
    const got = mappedShape(m, storedShapes.get(m.stored)!, "the reverse key map");
    if (!want || want.join() !== got.join() || views.get(m.name) !== JSON.stringify(m.view ?? null)) {
      throw new InternalError(
        `the reverse key map wrote "${m.stored}" [${storedShapes.get(m.stored)!.join(",")}], which reads back as "${m.name}" [${got.join(",")}] ` +
          `(view ${JSON.stringify(m.view ?? null)}) instead of ${want ? `[${want.join(",")}] (view ${views.get(m.name)})` : "nothing"}`,
      );
    }
    seen.add(m.name);
  }
  const lost = [...shapes.keys()].find((n) => !seen.has(n));
  if (lost) throw new InternalError(`the reverse key map lost "${lost}": no stored name reads back as it`);
}
