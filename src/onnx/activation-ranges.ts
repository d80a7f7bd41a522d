import { DataType, Graph } from "./graph.js";

/** The range of values a tensor is quantized over (values outside it saturate). */
export interface Range {
  min: number;
  max: number;
}

/** Tensor name -> range; what calibration measures and static quantization reads. */
export type ActivationRanges = ReadonlyMap<string, Range>;

const MIN_SUFFIX = "#min";
const MAX_SUFFIX = "#max";
const SAMPLE_SUFFIX = "#sample";

/**
 * About how many values of each observed tensor one run hands back: enough to place a clipping range within a
 * fraction of a quantization step of its optimum over a calibration's few dozen runs, a few hundred kilobytes per
 * run for a UNet's hundred-odd tensors however large its feature maps.
 */
export const SAMPLES_PER_RUN = 8192;

/**
 * The graph with, for each of `tensors`, three more outputs: its minimum and maximum over every element (ReduceMin /
 * ReduceMax to a scalar) and an evenly spaced sample of about SAMPLES_PER_RUN of its elements (every k-th of the
 * flattened tensor, k odd so that the sample walks through every column of a power-of-two-wide map instead of
 * repeating one). Calibration runs a full network this way and reads no feature map back whole.
 */
export function observeRanges(graph: Graph, tensors: readonly string[]): Graph {
  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  out.nodes.push(...graph.nodes);
  for (const [name, def] of graph.initializers) out.initializers.set(name, def);
  const int64 = (name: string, values: number[]) => {
    out.initializers.set(name, {
      name,
      dims: [values.length],
      dtype: DataType.INT64,
      load: () => BigInt64Array.from(values, (v) => BigInt(v)),
    });
    return name;
  };
  const flat = int64("#observe/flat", [-1]);
  const zero = int64("#observe/zero", [0]);
  const end = int64("#observe/end", [Number.MAX_SAFE_INTEGER]);
  const half = int64("#observe/half", [2 * SAMPLES_PER_RUN]);
  const one = int64("#observe/one", [1]);
  const two = int64("#observe/two", [2]);
  for (const t of tensors) {
    for (const [op, suffix] of [
      ["ReduceMin", MIN_SUFFIX],
      ["ReduceMax", MAX_SUFFIX],
    ] as const) {
      const y = `${t}${suffix}`;
      out.nodes.push({ opType: op, name: `${y}#observe`, inputs: [t], outputs: [y], attributes: { keepdims: 0 } });
      out.outputs.push({ name: y, dtype: DataType.FLOAT, dims: [] });
    }
    // Stride 2 * floor(size / (2 * SAMPLES_PER_RUN)) + 1: odd, and about size / SAMPLES_PER_RUN.
    const s = `${t}${SAMPLE_SUFFIX}`;
    const node = (opType: string, inputs: string[], output: string) =>
      out.nodes.push({ opType, name: `${output}#observe`, inputs, outputs: [output], attributes: {} });
    node("Reshape", [t, flat], `${s}/flat`);
    node("Shape", [`${s}/flat`], `${s}/size`);
    node("Div", [`${s}/size`, half], `${s}/halves`);
    node("Mul", [`${s}/halves`, two], `${s}/even`);
    node("Add", [`${s}/even`, one], `${s}/step`);
    out.nodes.push({
      opType: "Slice",
      name: `${s}#observe`,
      inputs: [`${s}/flat`, zero, end, zero, `${s}/step`],
      outputs: [s],
      attributes: {},
    });
    out.outputs.push({ name: s, dtype: DataType.FLOAT, dims: ["samples"] });
  }
  return out;
}

/**
 * What observed runs showed of each tensor (the outputs `observeRanges` added): its extremes and a sample of its
 * values, from which `ranges` chooses where to clip.
 */
export class ActivationStatistics {
  private readonly seen = new Map<string, { min: number; max: number; samples: Float32Array[] }>();

  /** Adds one run's observer outputs. */
  add(outputs: Readonly<Record<string, { data: ArrayLike<number> }>>): void {
    for (const [name, value] of Object.entries(outputs)) {
      if (!name.endsWith(MIN_SUFFIX)) continue;
      const t = name.slice(0, -MIN_SUFFIX.length);
      const max = outputs[`${t}${MAX_SUFFIX}`];
      if (!max) continue;
      const lo = value.data[0]!;
      const hi = max.data[0]!;
      const sample = outputs[`${t}${SAMPLE_SUFFIX}`];
      const s = this.seen.get(t) ?? { min: lo, max: hi, samples: [] };
      s.min = Math.min(s.min, lo);
      s.max = Math.max(s.max, hi);
      if (sample) s.samples.push(Float32Array.from(sample.data));
      this.seen.set(t, s);
    }
  }

  /** Each tensor's full range over all runs (min and max seen). */
  extremes(): Map<string, Range> {
    return new Map([...this.seen].map(([t, s]) => [t, { min: s.min, max: s.max }]));
  }

  /** Each tensor's uint8 quantization range: the one with the least squared error over its samples (clippedRange). */
  ranges(): Map<string, Range> {
    return new Map([...this.seen].map(([t, s]) => [t, clippedRange(s, s.samples)]));
  }
}

const BINS = 2048;
/** Candidate ends, as fractions of the extreme on each side: 1 (no clipping) down to 1/8 in 2% steps. */
const FRACTIONS = Array.from({ length: 105 }, (_, i) => 0.98 ** i).filter((f) => f >= 0.125);

/**
 * The range [lo, hi] ⊆ [min, max] (both widened to 0, as uint8 quantization has them) over which 8-bit uniform
 * quantization of `samples` has the least mean squared error: rounding error (step² / 12 per value inside) against
 * clipping error (the distance to the nearer end, squared, per value outside). A feature map's extremes are a few
 * rare values several times its typical size; quantizing over them spends most of the 256 levels where almost no
 * values are, and clipping them costs less than the coarser rounding of all the others (ACIQ, Banner et al.; the
 * MSE calibrators of TensorRT and onnxruntime). Without samples, the full range.
 */
export function clippedRange(extremes: Range, samples: readonly ArrayLike<number>[]): Range {
  const min = Math.min(0, extremes.min);
  const max = Math.max(0, extremes.max);
  const total = samples.reduce((n, s) => n + s.length, 0);
  if (!(max > min) || total === 0) return { min: extremes.min, max: extremes.max };
  // Histogram over [min, max]: counts and first and second moments per bin (exact sums, not bin centres).
  const width = (max - min) / BINS;
  const n = new Float64Array(BINS);
  const s1 = new Float64Array(BINS);
  const s2 = new Float64Array(BINS);
  for (const sample of samples)
    for (let i = 0; i < sample.length; i++) {
      const v = Math.min(max, Math.max(min, sample[i]!));
      const b = Math.min(BINS - 1, Math.floor((v - min) / width));
      n[b]! += 1;
      s1[b]! += v;
      s2[b]! += v * v;
    }
  // Prefix sums: the moments of every value below a bin edge.
  const cn = prefix(n);
  const c1 = prefix(s1);
  const c2 = prefix(s2);
  const edge = (x: number) => Math.max(0, Math.min(BINS, Math.round((x - min) / width)));
  /** Σ (v - x)² over the values below edge e (clipped up to x), or above it (clipped down to x). */
  const below = (e: number, x: number) => c2[e]! - 2 * x * c1[e]! + x * x * cn[e]!;
  const above = (e: number, x: number) =>
    c2[BINS]! - c2[e]! - 2 * x * (c1[BINS]! - c1[e]!) + x * x * (cn[BINS]! - cn[e]!);
  let best = { min, max };
  let bestError = Number.POSITIVE_INFINITY;
  for (const a of min < 0 ? FRACTIONS : [1])
    for (const b of max > 0 ? FRACTIONS : [1]) {
      const lo = min * a;
      const hi = max * b;
      const el = edge(lo);
      const eh = edge(hi);
      const step = (hi - lo) / 255;
      const inside = cn[eh]! - cn[el]!;
      const error = below(el, lo) + above(eh, hi) + (inside * step * step) / 12;
      if (error < bestError) {
        bestError = error;
        best = { min: lo, max: hi };
      }
    }
  return best;
}

function prefix(values: Float64Array): Float64Array {
  const out = new Float64Array(values.length + 1);
  for (let i = 0; i < values.length; i++) out[i + 1] = out[i]! + values[i]!;
  return out;
}
