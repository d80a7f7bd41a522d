import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { interpolate, type InterpolationMode } from "../../src/image/interpolate.js";

interface Case {
  mode: InterpolationMode;
  antialias: boolean;
  shape: [number, number, number, number];
  out: [number, number];
  input: number[];
  output: number[];
}

// Computed by PyTorch's interpolate (scripts/reference/latent_interpolate.py), not by the code under test.
const reference = JSON.parse(
  readFileSync(new URL("../fixtures/interpolate/latent-modes.json", import.meta.url), "utf8"),
) as { cases: Case[] };

describe("interpolate (torch.nn.functional.interpolate semantics)", () => {
  for (const c of reference.cases) {
    const name = `${c.mode}${c.antialias ? " antialiased" : ""} ${c.shape[2]}x${c.shape[3]} -> ${c.out[0]}x${c.out[1]}`;
    it(`matches PyTorch for ${name}`, () => {
      const y = interpolate(Float32Array.from(c.input), c.shape, c.out[0], c.out[1], c.mode, c.antialias);
      expect(y.length).toBe(c.output.length);
      let worst = 0;
      for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i]! - c.output[i]!));
      expect(worst).toBeLessThan(2e-6);
    });
  }
});
