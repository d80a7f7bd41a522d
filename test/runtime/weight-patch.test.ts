import { describe, expect, it } from "vitest";
import { PatchApplier, type TensorPatch } from "../../src/runtime/weight-patch.js";
import { mulberry32 } from "../helpers/seeded-random.js";

const values = (random: () => number, n: number) => Float32Array.from({ length: n }, () => random() - 0.5);

/** W + a @ b as the applier documents it: per value, the products summed over the inner axis in order, then added. */
function reference(w: Float32Array, p: TensorPatch & { kind: "product" }): Float32Array {
  const f = Math.fround;
  const out = Float32Array.from(w);
  const width = p.block ?? p.n;
  for (let i = 0; i < p.m; i++) {
    for (let j = 0; j < p.n; j++) {
      let sum = 0;
      for (let k = 0; k < p.r; k++) sum = f(sum + f(p.a[i * p.r + k]! * p.b[k * p.n + j]!));
      // blocked: the tensor is [n / block, m, block]
      const at = Math.floor(j / width) * p.m * width + i * width + (j % width);
      out[at] = f(out[at]! + sum);
    }
  }
  return out;
}

describe("patches added to weight tensors (weight-patch.ts)", () => {
  const shapes: { m: number; r: number; n: number; block?: number }[] = [
    { m: 13, r: 5, n: 21 }, // rows and columns that fill no whole tile
    { m: 64, r: 32, n: 40 },
    { m: 10, r: 3, n: 24, block: 8 },
    { m: 7, r: 4, n: 48, block: 16 },
    { m: 36, r: 32, n: 32, block: 16 },
  ];
  for (const { m, r, n, block } of shapes) {
    it(`[${m}x${r}] @ [${r}x${n}]${block ? ` into blocks of ${block}` : ""}: every value is W + the products summed in order, bit for bit`, async () => {
      const random = mulberry32(m * 1000 + n * 10 + r);
      const w = values(random, m * n);
      const p = { kind: "product", a: values(random, m * r), b: values(random, r * n), m, r, n, block } as const;
      const applier = new PatchApplier();
      const got = await applier.apply(w, [p], "test");
      expect(Array.from(got)).toEqual(Array.from(reference(w, p)));
    });
  }

  it("a product large enough to be split over two threads is the one-thread product, bit for bit", async () => {
    const [m, r, n] = [516, 32, 256]; // 4 M multiply-adds, rows not a multiple of 8
    const random = mulberry32(9);
    const w = values(random, m * n);
    for (const block of [undefined, 16]) {
      const p = { kind: "product", a: values(random, m * r), b: values(random, r * n), m, r, n, block } as const;
      const one = new PatchApplier(1);
      const two = new PatchApplier(2);
      const want = Array.from(one.apply(w, [p], "one thread"));
      expect(Array.from(two.apply(w, [p], "two threads"))).toEqual(want);
      await one.close();
      await two.close();
    }
  });

  it("merging tensor after tensor reuses the applier's memory: no fresh page for the values it writes", async () => {
    // A [m, n] weight of 16 MiB and a rank-32 product, as a LoRA over a large convolution gives.
    const [m, r, n] = [4096, 32, 1024];
    const random = mulberry32(5);
    const w = values(random, m * n);
    const patch: TensorPatch = { kind: "product", a: values(random, m * r), b: values(random, r * n), m, r, n };
    const applier = new PatchApplier();
    await applier.apply(w, [patch], "first");
    const rounds = 4;
    const before = process.resourceUsage().minorPageFault;
    for (let i = 0; i < rounds; i++) await applier.apply(w, [patch], `again ${i}`);
    const faults = process.resourceUsage().minorPageFault - before;
    // Fresh memory for each result would fault every 4 KiB page of it: 4096 per round.
    expect(faults).toBeLessThan((rounds * m * n * 4) / 4096 / 10);
  });
});
