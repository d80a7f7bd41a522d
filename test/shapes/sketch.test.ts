import { describe, expect, it } from "vitest";
import { judge } from "../../scripts/shapes/judge.js";
import { sketchCase, sketchCases } from "../../scripts/shapes/sketch.js";
import { PALETTE, POSITIONS, SHAPES } from "../../scripts/shapes/world.js";

describe("rough sketches for image-to-image", () => {
  const sketches = sketchCases(20);

  it("are reproducible from their index", () => {
    expect(Buffer.from(sketchCase(7).image.data).equals(Buffer.from(sketches[7]!.image.data))).toBe(true);
    expect(Buffer.from(sketchCase(7).image.data).equals(Buffer.from(sketches[8]!.image.data))).toBe(false);
  });

  it("cover every position and shape, and never name the position in the prompt", () => {
    expect(new Set(sketches.map((s) => s.expected.position))).toEqual(new Set(POSITIONS));
    expect(new Set(sketches.map((s) => s.expected.shape))).toEqual(new Set(SHAPES));
    for (const s of sketches) {
      expect(s.prompt).toContain(`${s.expected.colour} ${s.expected.shape}`);
      expect(s.prompt).toContain(`${s.expected.background} background`);
      expect(s.prompt).not.toMatch(/left|right|top|bottom|centre|center|middle/);
    }
  });

  it("put a blob of the named colour where the judge reads the expected position", () => {
    for (const s of sketches) {
      const j = judge(s.image);
      expect(j.background).toBe(s.expected.background);
      expect(j.object?.colour).toBe(s.expected.colour);
      expect(j.object?.position).toBe(s.expected.position);
    }
  });

  it("look hand-made: the blob has gaps, and its paint is off the palette colour", () => {
    for (const s of sketches) {
      const [cx, cy] = s.centre.map(Math.round) as [number, number];
      const target = PALETTE[s.expected.colour];
      let near = 0,
        exact = 0,
        total = 0;
      for (let y = cy - 6; y <= cy + 6; y++) {
        for (let x = cx - 6; x <= cx + 6; x++) {
          const p = (y * 64 + x) * 3;
          const d = Math.hypot(
            s.image.data[p]! - target[0],
            s.image.data[p + 1]! - target[1],
            s.image.data[p + 2]! - target[2],
          );
          total++;
          if (d < 60) near++;
          if (d === 0) exact++;
        }
      }
      // Mostly painted, not solid: the zigzag leaves background between its passes.
      expect(near / total).toBeGreaterThan(0.4);
      expect(near / total).toBeLessThan(0.95);
      expect(exact).toBe(0);
    }
  });
});
