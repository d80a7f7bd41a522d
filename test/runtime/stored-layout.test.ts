import { describe, expect, it } from "vitest";
import type { WeightLayout } from "../../src/onnx/graph.js";
import { reorderFilter } from "../../src/runtime/nchwc-layout.js";
import { patchForLayout } from "../../src/runtime/stored-layout.js";
import { PatchApplier } from "../../src/runtime/weight-patch.js";
import { transpose2d } from "../../src/weights/transpose.js";
import { mulberry32 } from "../helpers/seeded-random.js";

/** W + scale * up @ down in W's own layout, computed directly. */
function merged(
  w: Float32Array,
  up: Float32Array,
  down: Float32Array,
  out: number,
  rank: number,
  scale: number,
): Float32Array {
  const rest = w.length / out;
  const m = Float32Array.from(w);
  for (let o = 0; o < out; o++)
    for (let j = 0; j < rank; j++)
      for (let c = 0; c < rest; c++) m[o * rest + c]! += scale * up[o * rank + j]! * down[j * rest + c]!;
  return m;
}

function store(w: Float32Array, dims: number[], layout: WeightLayout): Float32Array {
  if (layout.kind === "as-is") return Float32Array.from(w);
  if (layout.kind === "transposed") return transpose2d(w, dims[0]!, dims[1]!);
  return reorderFilter(w, dims, layout.block, layout.filter);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("a low-rank or dense change lowered into the layout a graph stores its weight in", () => {
  const cases: { dims: number[]; layout: WeightLayout }[] = [
    { dims: [24, 40], layout: { kind: "as-is" } },
    { dims: [24, 40], layout: { kind: "transposed" } },
    { dims: [16, 24, 3, 3], layout: { kind: "as-is" } },
    { dims: [16, 24, 3, 3], layout: { kind: "blocked", filter: "OIHWBiBo", block: 8 } },
    { dims: [32, 16, 3, 3], layout: { kind: "blocked", filter: "OIHWBiBo", block: 16 } },
    { dims: [16, 4, 3, 3], layout: { kind: "blocked", filter: "OIHWBo", block: 8 } },
    { dims: [16, 9, 1, 1], layout: { kind: "blocked", filter: "OIHWBo", block: 16 } },
  ];
  for (const c of cases) {
    const name = c.layout.kind === "blocked" ? `${c.layout.filter}${c.layout.block}` : c.layout.kind;
    it(`[${c.dims.join(",")}] ${name}: the patched stored tensor is the stored form of W + scale x up @ down, and of W + scale x delta`, () => {
      const random = mulberry32(c.dims.reduce((a, b) => a + b, 7));
      const out = c.dims[0]!;
      const rest = c.dims.reduce((a, b) => a * b, 1) / out;
      const rank = 3;
      const w = Float32Array.from({ length: out * rest }, () => random() - 0.5);
      const up = Float32Array.from({ length: out * rank }, () => random() - 0.5);
      const down = Float32Array.from({ length: rank * rest }, () => random() - 0.5);
      const applier = new PatchApplier();
      const lowRank = patchForLayout({ kind: "low-rank", up, down, rank, scale: 0.7 }, c.dims, c.layout, "test");
      const got = applier.apply(store(w, c.dims, c.layout), [lowRank], "test");
      expect(maxDiff(got, store(merged(w, up, down, out, rank, 0.7), c.dims, c.layout))).toBeLessThan(1e-5);
      // The same change given whole.
      const delta = merged(new Float32Array(w.length), up, down, out, rank, 1);
      const dense = patchForLayout({ kind: "dense", delta, scale: 0.7 }, c.dims, c.layout, "test");
      const gotDense = applier.apply(store(w, c.dims, c.layout), [dense], "test");
      expect(maxDiff(gotDense, store(merged(w, up, down, out, rank, 0.7), c.dims, c.layout))).toBeLessThan(1e-5);
    });
  }
});
