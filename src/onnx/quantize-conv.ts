import { DataType, Graph, type InitializerDef, type NodeDef, type ScratchBuffers } from "./graph.js";
import type { ActivationRanges, Range } from "./activation-ranges.js";
import { INT8_MAX, roundHalfEven } from "./quantize-linear.js";

/**
 * Convolutions in int8, written as onnxruntime fuses them into QLinearConv (its QDQ format): the input goes through
 * QuantizeLinear -> DequantizeLinear with a static uint8 scale (from calibrated ranges), the weight is int8 with one
 * scale per output channel behind a DequantizeLinear, the bias int32 at the product's scale, and the output is
 * quantized and dequantized again with its own calibrated scale. onnxruntime's QDQ pass turns each such group into
 * one QLinearConv (3.4-3.6x faster than fp32 at SD's 3x3 shapes on a VNNI CPU, issue 20's probe), and neighbouring
 * Q/DQ pairs of the same scale cancel. A Conv whose input or output range is unknown stays fp32.
 *
 * Never ConvInteger: onnxruntime runs it 7x slower than fp32.
 */

const INT32_MAX = 2 ** 31 - 1;

export interface QuantizeConvOptions {
  /** The calibrated range of each convolution's input and output tensors. */
  ranges: ActivationRanges;
  /** Convolutions to leave in fp32 (the model's choice). */
  keep?: (node: NodeDef) => boolean;
}

/** uint8 affine parameters of a range widened to include 0 (so zero, the padding value, is exact). */
export function uint8Params(r: Range): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, r.min);
  const hi = Math.max(0, r.max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return { scale, zeroPoint: Math.max(0, Math.min(255, roundHalfEven(-lo / scale))) };
}

/** Symmetric int8 per output channel of an [O, ...] filter: scale = max |w| / 127 (1 for a zero channel). */
export function quantizePerChannel(w: Float32Array, channels: number): { q: Int8Array; scales: Float32Array } {
  const per = w.length / channels;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(channels);
  for (let o = 0; o < channels; o++) {
    let m = 0;
    for (let i = o * per; i < (o + 1) * per; i++) m = Math.max(m, Math.abs(w[i]!));
    scales[o] = m > 0 ? m / INT8_MAX : 1;
    const inv = 1 / scales[o]!;
    for (let i = o * per; i < (o + 1) * per; i++) {
      const v = roundHalfEven(w[i]! * inv);
      q[i] = Math.min(INT8_MAX, Math.max(v, -INT8_MAX));
    }
  }
  return { q, scales };
}

/** Names of the convolutions `quantizeConv` may quantize: a constant fp32 4-D filter, no groups. */
export function quantizableConvs(graph: Graph): NodeDef[] {
  return graph.nodes.filter((n) => eligibleFilter(n, graph.initializers) !== undefined);
}

export function quantizeConv(graph: Graph, opts: QuantizeConvOptions): Graph {
  const inits = graph.initializers;
  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  const added: InitializerDef[] = [];
  const replaced = new Map<string, InitializerDef[]>();
  /** Tensor -> its uint8 form (the QuantizeLinear output), made once however many convolutions read it. */
  const quantized = new Map<string, string>();
  let count = 0;
  const constant = (
    name: string,
    dims: number[],
    dtype: DataType,
    data: () => Float32Array | Uint8Array | Int8Array | Int32Array,
  ) => {
    added.push({ name, dims, dtype, load: data });
    return name;
  };
  const params = new Map<string, { scale: string; zeroPoint: string; value: number }>();
  const paramsOf = (tensor: string, range: Range) => {
    let p = params.get(tensor);
    if (!p) {
      const { scale, zeroPoint } = uint8Params(range);
      p = {
        scale: constant(`${tensor}#qscale`, [], DataType.FLOAT, () => Float32Array.of(scale)),
        zeroPoint: constant(`${tensor}#qzero`, [], DataType.UINT8, () => Uint8Array.of(zeroPoint)),
        value: scale,
      };
      params.set(tensor, p);
    }
    return p;
  };
  const quantize = (x: string, p: { scale: string; zeroPoint: string }, q: string, name: string): string => {
    out.nodes.push({ opType: "QuantizeLinear", name, inputs: [x, p.scale, p.zeroPoint], outputs: [q], attributes: {} });
    return q;
  };
  const quantizeTensor = (tensor: string, range: Range): string => {
    let q = quantized.get(tensor);
    if (!q) {
      const p = paramsOf(tensor, range);
      q = quantize(tensor, p, `${tensor}#u8`, `${tensor}#quantize`);
      quantized.set(tensor, q);
    }
    return q;
  };
  const dequantize = (q: string, p: { scale: string; zeroPoint: string }, y: string, name: string) =>
    out.nodes.push({
      opType: "DequantizeLinear",
      name,
      inputs: [q, p.scale, p.zeroPoint],
      outputs: [y],
      attributes: {},
    });

  for (const node of graph.nodes) {
    const filter = eligibleFilter(node, inits);
    const [x, w, b] = node.inputs as [string, string, string | undefined];
    const y = node.outputs[0]!;
    const xr = opts.ranges.get(x);
    const yr = opts.ranges.get(y);
    if (!filter || !xr || !yr || opts.keep?.(node)) {
      out.nodes.push(node);
      continue;
    }
    const n = count++;
    // The input, quantized (once per tensor) and dequantized for this convolution alone, as the fusion wants.
    const xp = paramsOf(x, xr);
    const xdq = `${x}#dq${n}`;
    dequantize(quantizeTensor(x, xr), xp, xdq, `${node.name}#dequantize_input`);
    // The filter and bias, quantized lazily as the graph is serialized (the scales are kept for the bias).
    const channels = filter.dims[0]!;
    let perChannel: Float32Array | undefined;
    const quantizeFilter = (scratch?: ScratchBuffers) => {
      const r = quantizePerChannel(filter.load(scratch) as Float32Array, channels);
      perChannel = r.scales;
      return r;
    };
    const scales = () => perChannel ?? quantizeFilter().scales;
    const wq: InitializerDef[] = [
      { name: `${w}#int8`, dims: filter.dims, dtype: DataType.INT8, load: (s) => quantizeFilter(s).q },
      { name: `${w}#wscale`, dims: [channels], dtype: DataType.FLOAT, load: () => scales() },
      { name: `${w}#wzero`, dims: [channels], dtype: DataType.INT8, load: () => new Int8Array(channels) },
    ];
    if (b) {
      const bias = inits.get(b)!;
      const xs = xp.value;
      wq.push(
        {
          name: `${b}#int32`,
          dims: [channels],
          dtype: DataType.INT32,
          load: () => {
            const ws = scales();
            const values = bias.load() as Float32Array;
            return Int32Array.from(values, (v, o) =>
              Math.max(-INT32_MAX, Math.min(INT32_MAX, roundHalfEven(v / (xs * ws[o]!)))),
            );
          },
        },
        {
          name: `${b}#bscale`,
          dims: [channels],
          dtype: DataType.FLOAT,
          load: () => Float32Array.from(scales(), (s) => s * xs),
        },
      );
    }
    replaced.set(w, wq);
    const wdq = `${w}#dq${n}`;
    out.nodes.push({
      opType: "DequantizeLinear",
      name: `${node.name}#dequantize_weight`,
      inputs: [wq[0]!.name, wq[1]!.name, wq[2]!.name],
      outputs: [wdq],
      attributes: { axis: 0 },
    });
    let bdq: string | undefined;
    if (b) {
      bdq = `${b}#dq${n}`;
      out.nodes.push({
        opType: "DequantizeLinear",
        name: `${node.name}#dequantize_bias`,
        inputs: [wq[3]!.name, wq[4]!.name],
        outputs: [bdq],
        attributes: { axis: 0 },
      });
    }
    // The product in float as the QDQ format writes it, then the output quantized with its own range.
    const yf = `${y}#f32`;
    out.nodes.push({ ...node, inputs: bdq ? [xdq, wdq, bdq] : [xdq, wdq], outputs: [yf] });
    const yp = paramsOf(y, yr);
    const yq = quantize(yf, yp, `${y}#u8`, `${y}#quantize`);
    quantized.set(y, yq);
    dequantize(yq, yp, y, `${y}#dequantize`);
  }

  const used = new Set(out.nodes.flatMap((nd) => nd.inputs));
  for (const [name, def] of inits) {
    for (const q of replaced.get(name) ?? []) out.initializers.set(q.name, q);
    if (used.has(name)) out.initializers.set(name, def);
  }
  for (const def of added) if (used.has(def.name)) out.initializers.set(def.name, def);
  return out;
}

/** The constant fp32 filter of a plain (ungrouped) 2-D Conv, with an fp32 [O] bias or none. */
function eligibleFilter(node: NodeDef, inits: ReadonlyMap<string, InitializerDef>): InitializerDef | undefined {
  if (node.opType !== "Conv" || (node.domain ?? "") !== "" || node.inputs.length < 2) return undefined;
  const w = inits.get(node.inputs[1]!);
  if (!w || w.dtype !== DataType.FLOAT || w.dims.length !== 4) return undefined;
  if (node.attributes.group !== undefined && node.attributes.group !== 1) return undefined;
  if (node.inputs[2]) {
    const b = inits.get(node.inputs[2]);
    if (!b || b.dtype !== DataType.FLOAT || b.dims.length !== 1 || b.dims[0] !== w.dims[0]) return undefined;
  }
  return w;
}
