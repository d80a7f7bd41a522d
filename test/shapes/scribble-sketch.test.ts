import { describe, expect, it } from "vitest";
import { luminance } from "../../src/control/grey.js";
import { scribbleMap, unplacedCaption } from "../../scripts/shapes/make-scribble-dataset.js";
import { sampleScene } from "../../scripts/shapes/scene.js";
import { scribbleCase, scribbleCases, scribbleTrainingRng } from "../../scripts/shapes/scribble-sketch.js";
import { POSITION_ANCHOR, POSITIONS, SHAPES, type PositionName } from "../../scripts/shapes/world.js";

const nearestAnchor = (x: number, y: number): PositionName =>
  POSITIONS.reduce((best, p) =>
    Math.hypot(x - POSITION_ANCHOR[p][0], y - POSITION_ANCHOR[p][1]) <
    Math.hypot(x - POSITION_ANCHOR[best][0], y - POSITION_ANCHOR[best][1])
      ? p
      : best,
  );

describe("rough pen drawings for the scribble ControlNet", () => {
  const drawings = scribbleCases(20);

  it("are reproducible from their index, and each differs", () => {
    expect(Buffer.from(scribbleCase(7).image.data).equals(Buffer.from(drawings[7]!.image.data))).toBe(true);
    expect(Buffer.from(drawings[7]!.image.data).equals(Buffer.from(drawings[8]!.image.data))).toBe(false);
  });

  it("cover every shape and position, and the prompt never names the position", () => {
    expect(new Set(drawings.map((d) => d.expected.position))).toEqual(new Set(POSITIONS));
    expect(new Set(drawings.map((d) => d.expected.shape))).toEqual(new Set(SHAPES));
    for (const d of drawings) {
      expect(d.prompt).toContain(`${d.expected.colour} ${d.expected.shape}`);
      expect(d.prompt).toContain(`${d.expected.background} background`);
      expect(d.prompt).not.toMatch(/left|right|top|bottom|centre|center|middle/);
    }
  });

  it("are dark ink on light paper, which the product's scribble preprocessing turns into white strokes on black where the shape was drawn", async () => {
    for (const d of drawings) {
      const lum = luminance(d.image);
      expect(lum.filter((v) => v > 200).length / lum.length, "mostly light paper").toBeGreaterThan(0.8);
      const map = await scribbleMap(d.image);
      let white = 0,
        sx = 0,
        sy = 0;
      for (let p = 0; p < 64 * 64; p++) {
        const v = map.data[p * 3]!;
        expect(v === 0 || v === 255).toBe(true);
        if (v === 255) {
          white++;
          sx += (p % 64) + 0.5;
          sy += Math.floor(p / 64) + 0.5;
        }
      }
      // Strokes, not a filled area: a few percent of the picture.
      expect(white / (64 * 64)).toBeGreaterThan(0.01);
      expect(white / (64 * 64)).toBeLessThan(0.3);
      expect(nearestAnchor(sx / white, sy / white)).toBe(d.expected.position);
    }
  });

  it("the evaluation's drawings come from generator seeds no training drawing can use", () => {
    expect(() => scribbleTrainingRng(0)).not.toThrow();
    expect(() => scribbleTrainingRng(1_000_000)).not.toThrow();
    expect(() => scribbleTrainingRng(0x5c21bb1e - 0x10000000)).toThrow(/training drawings take seeds 0 to/);
    expect(() => scribbleTrainingRng(-1)).toThrow(RangeError);
  });

  it("training captions without position name each object's colour and shape and the background, and no position", () => {
    for (let seed = 0; seed < 200; seed++) {
      const scene = sampleScene(seed);
      const caption = unplacedCaption(scene);
      expect(caption).not.toMatch(/left|right|top|bottom|centre|center|middle|small|big/);
      for (const o of scene.objects) expect(caption).toContain(`${o.colour} ${o.shape}`);
      expect(caption).toMatch(new RegExp(`, ${scene.background} background$`));
      expect(caption).not.toMatch(/\ba [aeiou]/);
    }
  });
});
