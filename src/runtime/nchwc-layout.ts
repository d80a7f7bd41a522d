import { InternalError } from "../errors.js";
import {
  constantValues,
  DataType,
  Graph,
  type InitializerDef,
  type NodeDef,
  type ScratchBuffers,
} from "../onnx/graph.js";

/**
 * onnxruntime's blocked convolution layout (NCHWc: channels in blocks of the CPU's vector width), written into the
 * graph when it is built rather than left to onnxruntime at every load.
 *
 * onnxruntime's CPU provider runs convolutions about twice as fast in this layout, and its own pass that rewrites a
 * graph into it (NchwcTransformer, optimization level "all") copies every convolution weight several times while
 * doing so: for the SD1.5 UNet 2.3 M page faults and 30-40 s on a 2-core VM, against 5 s for every other pass
 * together. Saving its result beside the cache entry (what this project did before) doubled the disk and took
 * another 15-27 s. Here the same rewrite costs a permutation of each weight as it is serialized.
 *
 * The rewrite is onnxruntime's, for what our networks hold: each Conv with a constant weight whose output channels
 * fill whole blocks becomes ReorderInput -> nchwc Conv -> ReorderOutput (a Conv with fewer input channels than a
 * block reads the plain tensor directly), a Conv fed by another rewritten Conv takes its blocked output as it is,
 * and tensors reordered twice are reordered once. The weight permutations are MLAS's (`MlasReorderFilterOIHWBiBo`,
 * `MlasReorderFilterOIHWBo`); `nchwc-probe.ts` checks them against the installed onnxruntime and finds the block
 * size, so a runtime that differs gets no rewrite (and does its own) rather than wrong weights. Convolutions the
 * rewrite leaves alone (a few output channels) are still rewritten by onnxruntime at load, where they cost little.
 *
 * A filter the graph computes from its initializers (GraphBuilder.upsampleConv3x3 folds 2x2 filters from a stored
 * 3x3 one) is permuted in the graph instead (by onnxruntime's ReorderInput), and onnxruntime folds both at load: the
 * networks whose weights LoRAs rewrite in place run without onnxruntime's own NCHWc pass, so such a convolution would
 * otherwise run in the plain layout. Concat and DepthToSpace that move whole blocks of channels run on the blocked
 * tensors (upsampleConv3x3 interleaves its four outputs so), reordered back once after them.
 */

export const NCHWC_DOMAIN = "com.microsoft.nchwc";

/** The graph with its eligible convolutions in onnxruntime's NCHWc layout of `blockSize` channels (1: unchanged). */
export function nchwcLayout(graph: Graph, blockSize: number): Graph {
  if (blockSize <= 1) return graph;
  const inits = graph.initializers;
  const taken = new Set<string>([
    ...inits.keys(),
    ...graph.inputs.map((i) => i.name),
    ...graph.nodes.flatMap((n) => [n.name, ...n.outputs]),
  ]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  /** Plain tensor -> its blocked form, made by a rewritten Conv or a ReorderInput. */
  const blocked = new Map<string, string>();
  /** Reordered weights by original weight name and layout. */
  const weights = new Map<string, string>();
  const scratch = reorderScratch();
  const nodes: NodeDef[] = [];
  const constants = constantValues(graph);
  /** Initializers that some node reads other than as a Conv's filter: they stay in the graph as they are. */
  const readAsIs = new Set(
    graph.nodes.flatMap((n) =>
      n.inputs.filter((x, i) => inits.has(x) && !(n.opType === "Conv" && (n.domain ?? "") === "" && i === 1)),
    ),
  );
  /** Filters computed in the graph, permuted there, by original name and layout. */
  const computedWeights = new Map<string, string>();
  /** The shapes those permutations take. */
  const shapes: InitializerDef[] = [];

  /** The blocked form of plain tensor `x`, reordered here unless a rewritten node made it. */
  const blockedInput = (x: string, reader: string): string => {
    let reordered = blocked.get(x);
    if (!reordered) {
      reordered = fresh(`${x}#nchwc`);
      nodes.push({
        opType: "ReorderInput",
        name: fresh(`${reader}#ReorderInput`),
        inputs: [x],
        outputs: [reordered],
        attributes: {},
        domain: NCHWC_DOMAIN,
      });
      blocked.set(x, reordered);
    }
    return reordered;
  };

  /** Node `reader`'s blocked output `yBlocked`, reordered back to plain `y` (dropped later if nothing reads it). */
  const plainOutput = (reader: string, yBlocked: string, y: string, channels: number): void => {
    nodes.push({
      opType: "ReorderOutput",
      name: fresh(`${reader}#ReorderOutput`),
      inputs: [yBlocked],
      outputs: [y],
      attributes: { channels },
      domain: NCHWC_DOMAIN,
    });
    blocked.set(y, yBlocked);
  };

  for (const node of graph.nodes) {
    const upsample = eligibleUpsample(node, graph, blockSize);
    if (upsample) {
      // Upsampled in blocks: the large tensor is never reordered (the plain one before it is a quarter of its size).
      const y = node.outputs[0]!;
      const yBlocked = fresh(`${y}#nchwc`);
      nodes.push({
        opType: "Upsample",
        name: fresh(`${node.name}#nchwc`),
        inputs: [blockedInput(node.inputs[0]!, node.name)],
        outputs: [yBlocked],
        attributes: { scales: upsample.scales, mode: "nearest" },
        domain: NCHWC_DOMAIN,
      });
      plainOutput(node.name, yBlocked, y, upsample.channels);
      continue;
    }
    const rearranged = blockedRearrangement(node, graph, blocked, blockSize);
    if (rearranged) {
      // Whole blocks of channels moved as they are, on the blocked tensors (each block 64 bytes at a block of 16)
      const y = node.outputs[0]!;
      const yBlocked = fresh(`${y}#nchwc`);
      const inputs = node.inputs.map((x) => blocked.get(x)!);
      const constant = (values: number[]) => {
        const name = fresh(`${node.name}#nchwc_shape`);
        const data = BigInt64Array.from(values, (v) => BigInt(v));
        shapes.push({ name, dims: [values.length], dtype: DataType.INT64, load: () => data });
        return name;
      };
      if (rearranged.kind === "concat") {
        nodes.push({ ...node, name: fresh(`${node.name}#nchwc`), inputs, outputs: [yBlocked] });
      } else {
        nodes.push(...blockedDepthToSpace(node.name, inputs[0]!, yBlocked, rearranged, blockSize, fresh, constant));
      }
      plainOutput(node.name, yBlocked, y, rearranged.channels);
      continue;
    }
    const conv = eligibleConv(node, graph, constants, blockSize);
    if (!conv) {
      nodes.push(node);
      continue;
    }
    const [x, w, b] = node.inputs as [string, string, string | undefined];
    // Nodes come in topological order, so a Conv's rewritten producer has been seen: its blocked output is here.
    const input = conv.layout === "OIHWBiBo" ? blockedInput(x, node.name) : x;
    const weightKey = `${w}\0${conv.layout}`;
    let weight = weights.get(weightKey) ?? computedWeights.get(weightKey);
    if (!weight && (!inits.has(w) || readAsIs.has(w))) {
      // A filter computed from constants (upsampleConv3x3's), or one the graph also reads as it is (to compute those):
      // permuted by the graph itself, which onnxruntime folds once at load, rather than stored a second time.
      weight = fresh(`${w}#${conv.layout}${blockSize}`);
      nodes.push(...blockedFilterNodes(w, conv.dims, blockSize, conv.layout, weight, fresh, shapes));
      computedWeights.set(weightKey, weight);
    } else if (!weight) {
      weight = fresh(`${w}#${conv.layout}${blockSize}`);
      const def = inits.get(w)!;
      const load = (buffers?: ScratchBuffers) =>
        scratch.reorder(def.load(buffers) as Float32Array, def.dims, blockSize, conv.layout);
      // A checkpoint filter held as it is stays traceable to its tensor, now in the blocked layout.
      const origin =
        def.origin?.layout.kind === "as-is"
          ? { key: def.origin.key, layout: { kind: "blocked", filter: conv.layout, block: blockSize } as const }
          : undefined;
      out.initializers.set(
        weight,
        origin
          ? { name: weight, dims: def.dims, dtype: def.dtype, load, origin }
          : { name: weight, dims: def.dims, dtype: def.dtype, load },
      );
      weights.set(weightKey, weight);
    }
    const y = node.outputs[0]!;
    const yBlocked = fresh(`${y}#nchwc`);
    nodes.push({
      ...node,
      name: fresh(`${node.name}#nchwc`),
      inputs: b === undefined ? [input, weight] : [input, weight, b],
      outputs: [yBlocked],
      domain: NCHWC_DOMAIN,
    });
    plainOutput(node.name, yBlocked, y, conv.outputChannels);
  }

  // A rewritten Conv's plain output that nothing reads (its readers all took the blocked one) needs no ReorderOutput.
  const read = new Set<string>([...nodes.flatMap((n) => n.inputs), ...graph.outputs.map((o) => o.name)]);
  for (const n of nodes) {
    if (n.opType === "ReorderOutput" && n.domain === NCHWC_DOMAIN && !read.has(n.outputs[0]!)) continue;
    out.nodes.push(n);
  }
  const used = new Set(out.nodes.flatMap((n) => n.inputs));
  for (const [name, def] of inits) if (used.has(name)) out.initializers.set(name, def);
  // Keep the initializers in the order they were declared (weights first), reordered weights where theirs was.
  const laid = reorderInitializers(out, graph, weights);
  for (const def of shapes) laid.initializers.set(def.name, def);
  return laid;
}

type FilterLayout = "OIHWBiBo" | "OIHWBo";

/**
 * A nearest-neighbour Resize by whole factors of the two spatial axes (torch's F.interpolate(scale_factor=2)), on
 * channels that fill whole blocks: onnxruntime's blocked Upsample copies the same values (each output pixel is the
 * input pixel at floor(i / scale)), and the VAE's last upsampler then writes its 1 GB output blocked, where the plain
 * Resize wrote it plain and the next Conv reordered a copy of it.
 */
function eligibleUpsample(
  node: NodeDef,
  graph: Graph,
  block: number,
): { scales: number[]; channels: number } | undefined {
  if (node.opType !== "Resize" || (node.domain ?? "") !== "" || node.inputs.length !== 3 || node.inputs[1])
    return undefined;
  const a = node.attributes;
  if (a.mode !== "nearest" || a.coordinate_transformation_mode !== "asymmetric" || a.nearest_mode !== "floor")
    return undefined;
  const shape = graph.shapeOf(node.inputs[0]!);
  const scalesDef = graph.initializers.get(node.inputs[2]!);
  if (shape?.length !== 4 || shape[1]! % block !== 0 || !scalesDef || scalesDef.dtype !== DataType.FLOAT)
    return undefined;
  const scales = [...(scalesDef.load() as Float32Array)];
  if (
    scales.length !== 4 ||
    scales[0] !== 1 ||
    scales[1] !== 1 ||
    !scales.slice(2).every((s) => Number.isInteger(s) && s >= 1)
  )
    return undefined;
  return { scales, channels: shape[1]! };
}

type Rearrangement = { kind: "concat"; channels: number } | { kind: "depthToSpace"; channels: number; size: number };

/**
 * A node that only moves whole blocks of channels of blocked tensors, so that it can run on them: a Concat of
 * channels (each input's a whole number of blocks: a blocked tensor of one batch item is one run of memory, as a
 * plain one is), or a DepthToSpace (DCR) whose output channels fill whole blocks (upsampleConv3x3 interleaves its four
 * convolutions' outputs with one). Every input must have a blocked form already.
 */
function blockedRearrangement(
  node: NodeDef,
  graph: Graph,
  blocked: ReadonlyMap<string, string>,
  block: number,
): Rearrangement | undefined {
  if ((node.domain ?? "") !== "" || !node.inputs.every((x) => blocked.has(x))) return undefined;
  const channels = node.inputs.map((x) => graph.shapeOf(x)?.[1]);
  if (!channels.every((c) => c !== undefined && c % block === 0)) return undefined;
  const total = (channels as number[]).reduce((a, b) => a + b, 0);
  if (node.opType === "Concat" && node.attributes.axis === 1) return { kind: "concat", channels: total };
  const size = node.attributes.blocksize;
  const mode = node.attributes.mode ?? "DCR";
  if (node.opType !== "DepthToSpace" || mode !== "DCR" || typeof size !== "number") return undefined;
  const out = total / (size * size);
  return Number.isInteger(out) && out % block === 0 ? { kind: "depthToSpace", channels: out, size } : undefined;
}

/**
 * DepthToSpace (DCR, blocks of `size`) on a blocked [N, size*size*C, h, w] tensor: its memory is [N, size, size,
 * C/B, h, w, B] (channel (a*size + b)*C + c in block c/B), transposed to [N, C/B, h, size, w, size, B], which is the
 * blocked [N, C, h*size, w*size].
 */
function blockedDepthToSpace(
  name: string,
  x: string,
  y: string,
  d2s: { channels: number; size: number },
  block: number,
  fresh: (base: string) => string,
  constant: (values: number[]) => string,
): NodeDef[] {
  const { channels, size } = d2s;
  const [batch, spatial, split, permuted, outSpatial] = ["batch", "spatial", "split", "permuted", "outSpatial"].map(
    (part) => fresh(`${name}#nchwc_${part}`),
  ) as [string, string, string, string, string];
  const shapeOf = (out: string, start: number, end: number): NodeDef => ({
    opType: "Shape",
    name: fresh(`${name}#nchwc_Shape`),
    inputs: [x],
    outputs: [out],
    attributes: { start, end },
  });
  const concat = (inputs: string[], out: string): NodeDef => ({
    opType: "Concat",
    name: fresh(`${name}#nchwc_Concat`),
    inputs,
    outputs: [out],
    attributes: { axis: 0 },
  });
  const [splitShape, joinedShape] = [fresh(`${name}#nchwc_splitShape`), fresh(`${name}#nchwc_joinedShape`)];
  return [
    shapeOf(batch, 0, 1),
    shapeOf(spatial, 2, 4),
    concat([batch, constant([size, size, channels / block]), spatial, constant([block])], splitShape),
    {
      opType: "Reshape",
      name: fresh(`${name}#nchwc_Reshape`),
      inputs: [x, splitShape],
      outputs: [split],
      attributes: {},
    },
    {
      opType: "Transpose",
      name: fresh(`${name}#nchwc_Transpose`),
      inputs: [split],
      outputs: [permuted],
      attributes: { perm: [0, 3, 4, 1, 5, 2, 6] },
    },
    {
      opType: "Mul",
      name: fresh(`${name}#nchwc_Mul`),
      inputs: [spatial, constant([size])],
      outputs: [outSpatial],
      attributes: {},
    },
    concat([batch, constant([channels]), outSpatial], joinedShape),
    {
      opType: "Reshape",
      name: fresh(`${name}#nchwc_Reshape`),
      inputs: [permuted, joinedShape],
      outputs: [y],
      attributes: {},
    },
  ];
}

function eligibleConv(
  node: NodeDef,
  graph: Graph,
  constants: ReadonlySet<string>,
  block: number,
): { layout: FilterLayout; outputChannels: number; dims: readonly number[] } | undefined {
  if (node.opType !== "Conv" || (node.domain ?? "") !== "" || node.inputs.length < 2) return undefined;
  const inits = graph.initializers;
  const name = node.inputs[1]!;
  const w = inits.get(name);
  const dims = w ? w.dims : constants.has(name) ? graph.shapeOf(name) : undefined;
  if ((w && w.dtype !== DataType.FLOAT) || dims?.length !== 4) return undefined;
  const bias = node.inputs[2] ? inits.get(node.inputs[2]) : undefined;
  if (node.inputs[2] && (!bias || bias.dtype !== DataType.FLOAT || bias.dims.length !== 1 || bias.dims[0] !== dims[0]))
    return undefined;
  const group = node.attributes.group;
  if (group !== undefined && group !== 1) return undefined;
  const [o, i] = dims as [number, number];
  if (o % block !== 0) return undefined;
  if (i < block) return { layout: "OIHWBo", outputChannels: o, dims };
  return i % block === 0 ? { layout: "OIHWBiBo", outputChannels: o, dims } : undefined;
}

/**
 * The nodes that permute filter `w` of `dims` into `layout` (what reorderFilter does to stored ones) as `name`, with
 * onnxruntime's own ReorderInput, which moves a block of B channels to the innermost axis ([N, C, H, W] to [N, C/B,
 * H, W, B]) at memory speed, where a Transpose that moves the innermost axis goes value by value. OIHWBo = [O/B, I,
 * kh, kw, B(o)]: the filter read as [O/B, B, I*kh*kw, 1], reordered. OIHWBiBo = [O/B, I/B, kh, kw, B(i), B(o)]: first
 * [O, I, kh, kw] reordered to [O, I/B, kh, kw, B(i)], then that read as [O/B, B, I*kh*kw, 1] and reordered. Both
 * read back as [O, I, kh, kw].
 */
function blockedFilterNodes(
  w: string,
  dims: readonly number[],
  block: number,
  layout: FilterLayout,
  name: string,
  fresh: (base: string) => string,
  shapes: InitializerDef[],
): NodeDef[] {
  const [o, i, kh, kw] = dims as [number, number, number, number];
  const shape = (values: number[]) => {
    const s = fresh(`${name}#shape`);
    shapes.push({
      name: s,
      dims: [values.length],
      dtype: DataType.INT64,
      load: () => BigInt64Array.from(values, (v) => BigInt(v)),
    });
    return s;
  };
  const nodes: NodeDef[] = [];
  const step = (opType: "Reshape" | "ReorderInput", inputs: string[], out = fresh(`${name}#${opType}`)) => {
    nodes.push({
      opType,
      name: fresh(`${name}#${opType}`),
      inputs,
      outputs: [out],
      attributes: {},
      ...(opType === "ReorderInput" ? { domain: NCHWC_DOMAIN } : {}),
    });
    return out;
  };
  const inBlocks = layout === "OIHWBiBo" ? step("ReorderInput", [w]) : w;
  const outputsLast = step("Reshape", [inBlocks, shape([o / block, block, i * kh * kw, 1])]);
  step("Reshape", [step("ReorderInput", [outputsLast]), shape([o, i, kh, kw])], name);
  return nodes;
}

/**
 * Reorders weights into one buffer reused from weight to weight: a reordered weight is valid until the next one of
 * the graph is loaded, which is how serialization reads them (one at a time, each written before the next). Its
 * source array is left as it was (a loader may hand out the same array twice). Allocating each reordered weight
 * afresh costs page faults, which on the 2-core VM the benchmark runs on added about 10 s to building the SD1.5 UNet.
 */
function reorderScratch(): {
  reorder(data: Float32Array, dims: readonly number[], block: number, layout: FilterLayout): Float32Array;
} {
  let scratch = new Float32Array(0);
  return {
    reorder(data, dims, block, layout) {
      if (scratch.length < data.length) scratch = new Float32Array(data.length);
      return reorderFilter(data, dims, block, layout, scratch.subarray(0, data.length));
    },
  };
}

/**
 * MLAS's filter layouts for `block` channels. OIHWBiBo: per (output block, input block, kh, kw) a block x block
 * tile indexed [input][output]. OIHWBo: per (output block, input channel, kh, kw) the block's output channels.
 */
export function reorderFilter(
  src: Float32Array,
  dims: readonly number[],
  block: number,
  layout: FilterLayout,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  const [o, i, kh, kw] = dims as [number, number, number, number];
  const k = kh * kw;
  if (src.length !== o * i * k || dst.length !== src.length || o % block !== 0)
    throw new InternalError(`cannot reorder a [${dims.join(",")}] filter in blocks of ${block}`);
  if (layout === "OIHWBo") {
    for (let oc = 0; oc < o; oc++) {
      const base = (oc - (oc % block)) * i * k + (oc % block);
      for (let ic = 0; ic < i; ic++) {
        const from = (oc * i + ic) * k;
        const to = base + ic * k * block;
        for (let s = 0; s < k; s++) dst[to + s * block] = src[from + s]!;
      }
    }
    return dst;
  }
  if (i % block !== 0) throw new InternalError(`cannot reorder a [${dims.join(",")}] filter in blocks of ${block}`);
  const inBlocks = i / block;
  const tile = block * block;
  for (let oc = 0; oc < o; oc++) {
    const ob = (oc - (oc % block)) / block;
    const bo = oc % block;
    for (let ic = 0; ic < i; ic++) {
      const ib = (ic - (ic % block)) / block;
      const from = (oc * i + ic) * k;
      const to = (ob * inBlocks + ib) * k * tile + (ic % block) * block + bo;
      for (let s = 0; s < k; s++) dst[to + s * tile] = src[from + s]!;
    }
  }
  return dst;
}

function reorderInitializers(out: Graph, original: Graph, weights: ReadonlyMap<string, string>): Graph {
  const byOriginal = new Map<string, string[]>();
  for (const [key, name] of weights) {
    const w = key.slice(0, key.indexOf("\0"));
    byOriginal.set(w, [...(byOriginal.get(w) ?? []), name]);
  }
  const ordered = new Map<string, InitializerDef>();
  for (const name of original.initializers.keys()) {
    for (const n of [name, ...(byOriginal.get(name) ?? [])]) {
      const def = out.initializers.get(n);
      if (def) ordered.set(n, def);
    }
  }
  out.initializers.clear();
  for (const [n, def] of ordered) out.initializers.set(n, def);
  return out;
}
