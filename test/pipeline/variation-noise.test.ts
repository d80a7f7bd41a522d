import { describe, expect, it } from "vitest";
import { TorchGenerator } from "../../src/random/torch-generator.js";
import { BatchNoise } from "../../src/pipeline/batch-noise.js";
import { initialNoise } from "../../src/pipeline/variation-noise.js";
import { golden, HAVE_REFERENCE } from "../helpers/fixtures.js";

/**
 * A1111's slerp (modules/rng.py), written out here on its own in float64: the noise of one image [C, H, W] is
 * normalised along dimension 1, so every (channel, column) pair is a vector of H values with its own angle.
 */
function referenceSlerp(val: number, low: ArrayLike<number>, high: ArrayLike<number>, c: number, h: number, w: number) {
  const out = new Float64Array(c * h * w);
  const at = (ch: number, y: number, x: number) => (ch * h + y) * w + x;
  const dots: number[] = [];
  for (let ch = 0; ch < c; ch++)
    for (let x = 0; x < w; x++) {
      let ll = 0;
      let hh = 0;
      let lh = 0;
      for (let y = 0; y < h; y++) {
        ll += low[at(ch, y, x)]! ** 2;
        hh += high[at(ch, y, x)]! ** 2;
        lh += low[at(ch, y, x)]! * high[at(ch, y, x)]!;
      }
      dots.push(lh / Math.sqrt(ll) / Math.sqrt(hh));
    }
  expect(dots.reduce((a, b) => a + b, 0) / dots.length).toBeLessThan(0.9995);
  for (let ch = 0; ch < c; ch++)
    for (let x = 0; x < w; x++) {
      const omega = Math.acos(dots[ch * w + x]!);
      for (let y = 0; y < h; y++) {
        const i = at(ch, y, x);
        out[i] = (Math.sin((1 - val) * omega) * low[i]! + Math.sin(val * omega) * high[i]!) / Math.sin(omega);
      }
    }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.skipIf(!HAVE_REFERENCE)("variation seeds: the initial noise as A1111's ImageRNG makes it", () => {
  const rng = () => golden("goldens/rng/torch_randn.safetensors");
  const shape = [1, 4, 8, 8] as const;

  it("strength 0.3 is A1111's slerp of seed 0's and seed 42's fixture noise (per channel and column)", () => {
    const seed0 = rng().get("randn/seed0/1x4x8x8");
    const seed42 = rng().get("randn/seed42/1x4x8x8");
    const want = referenceSlerp(0.3, seed0, seed42, 4, 8, 8);
    const got = initialNoise(new BatchNoise([0n]), shape, { subseeds: [42n], strength: 0.3 });
    expect(maxAbsDiff(got, want)).toBeLessThan(2e-6);
    // Far from both ends: the interpolation did something.
    expect(maxAbsDiff(got, seed0)).toBeGreaterThan(0.1);
    expect(maxAbsDiff(got, seed42)).toBeGreaterThan(0.1);
  });

  it("strength 0 is the seed's noise and strength 1 the subseed's, bit for bit", () => {
    const seed0 = rng().get("randn/seed0/1x4x8x8");
    const seed1234 = rng().get("randn/seed1234/1x4x8x8");
    expect(initialNoise(new BatchNoise([0n]), shape, { subseeds: [1234n], strength: 0 })).toEqual(seed0);
    expect(initialNoise(new BatchNoise([0n]), shape, { subseeds: [1234n], strength: 1 })).toEqual(seed1234);
  });

  it("the generator advances by the image's share whatever the variation, so later (ancestral) noise is the seed's", () => {
    const plain = new BatchNoise([0n]);
    plain.randn(shape);
    const varied = new BatchNoise([0n]);
    initialNoise(varied, shape, { subseeds: [42n], strength: 0.5, resizeFrom: { width: 6, height: 6 } });
    expect(varied.randn(shape)).toEqual(plain.randn(shape));
  });

  it("seed resize: noise drawn at 8x8 latents is pasted centred into 12x10 noise (the rest from the seed at 12x10)", () => {
    const seed0 = rng().get("randn/seed0/1x4x8x8");
    const full = new TorchGenerator(0n).randn([1, 4, 12, 10]);
    const got = initialNoise(new BatchNoise([0n]), [1, 4, 12, 10], {
      subseeds: [],
      strength: 0,
      resizeFrom: { width: 8, height: 8 },
    });
    for (let c = 0; c < 4; c++)
      for (let y = 0; y < 12; y++)
        for (let x = 0; x < 10; x++) {
          const inside = y >= 2 && y < 10 && x >= 1 && x < 9;
          const want = inside ? seed0[(c * 8 + y - 2) * 8 + x - 1]! : full[(c * 12 + y) * 10 + x]!;
          expect(got[(c * 12 + y) * 10 + x]).toBe(want);
        }
  });

  it("seed resize to a smaller size keeps the centre of the larger noise", () => {
    const seed0 = rng().get("randn/seed0/1x4x8x8");
    const got = initialNoise(new BatchNoise([0n]), [1, 4, 4, 6], {
      subseeds: [],
      strength: 0,
      resizeFrom: { width: 8, height: 8 },
    });
    for (let c = 0; c < 4; c++)
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 6; x++) expect(got[(c * 4 + y) * 6 + x]).toBe(seed0[(c * 8 + y + 2) * 8 + x + 1]!);
  });
});
