import { DataType, Graph } from "./graph.js";

/** The range of values a tensor took over calibration runs. */
export interface Range {
  min: number;
  max: number;
}

/** Tensor name -> range; what calibration measures and static quantization reads. */
export type ActivationRanges = ReadonlyMap<string, Range>;

const MIN_SUFFIX = "#min";
const MAX_SUFFIX = "#max";

/**
 * The graph with, for each of `tensors`, two more outputs: its minimum and maximum over every element (ReduceMin /
 * ReduceMax to a scalar). Running it gives a tensor's range for a few bytes of output, however large the tensor:
 * calibration runs a full network this way and reads no feature map back.
 */
export function observeRanges(graph: Graph, tensors: readonly string[]): Graph {
  const out = new Graph(graph.name);
  out.inputs.push(...graph.inputs);
  out.outputs.push(...graph.outputs);
  out.nodes.push(...graph.nodes);
  for (const [name, def] of graph.initializers) out.initializers.set(name, def);
  for (const t of tensors) {
    for (const [op, suffix] of [
      ["ReduceMin", MIN_SUFFIX],
      ["ReduceMax", MAX_SUFFIX],
    ] as const) {
      const y = `${t}${suffix}`;
      out.nodes.push({ opType: op, name: `${y}#observe`, inputs: [t], outputs: [y], attributes: { keepdims: 0 } });
      out.outputs.push({ name: y, dtype: DataType.FLOAT, dims: [] });
    }
  }
  return out;
}

/**
 * Widens `ranges` by the observed tensors in one run's outputs (those `observeRanges` added): after several runs,
 * each tensor's range over all of them.
 */
export function accumulateRanges(
  ranges: Map<string, Range>,
  outputs: Readonly<Record<string, { data: ArrayLike<number> }>>,
): void {
  for (const [name, value] of Object.entries(outputs)) {
    if (!name.endsWith(MIN_SUFFIX)) continue;
    const t = name.slice(0, -MIN_SUFFIX.length);
    const max = outputs[`${t}${MAX_SUFFIX}`];
    if (!max) continue;
    const r = ranges.get(t);
    const lo = value.data[0]!;
    const hi = max.data[0]!;
    ranges.set(t, r ? { min: Math.min(r.min, lo), max: Math.max(r.max, hi) } : { min: lo, max: hi });
  }
}

/** Whether an output of a graph made by `observeRanges` is one of the observers (not the network's own). */
export function isObserverOutput(name: string): boolean {
  return name.endsWith(MIN_SUFFIX) || name.endsWith(MAX_SUFFIX);
}
