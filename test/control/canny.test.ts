import { describe, expect, it } from "vitest";
import { findPreprocessor } from "../../src/control/preprocessors.js";
import type { RgbImage } from "../../src/image/codec.js";

function grey(w: number, h: number, value: (x: number, y: number) => number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.fill(value(x, y), (y * w + x) * 3, (y * w + x) * 3 + 3);
  return { width: w, height: h, data };
}

/** Edge pixels as [x, y], checking that the map is white edges on black in all three channels. */
function edges(map: RgbImage): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < map.width * map.height; i++) {
    const [r, g, b] = map.data.subarray(i * 3, i * 3 + 3);
    expect(r === g && g === b && (r === 0 || r === 255)).toBe(true);
    if (r === 255) out.push([i % map.width, Math.floor(i / map.width)]);
  }
  return out;
}

const canny = (image: RgbImage, low: number, high: number) =>
  edges(findPreprocessor("canny").run(image, { thresholdA: low, thresholdB: high }));

describe("canny preprocessor (Gaussian blur, Sobel, non-maximum suppression, hysteresis)", () => {
  it("a uniform image has no edges", () => {
    expect(
      canny(
        grey(32, 32, () => 137),
        100,
        200,
      ),
    ).toEqual([]);
  });

  it("a vertical black/white boundary gives one thin edge per row, on the boundary, and nothing elsewhere", () => {
    const found = canny(
      grey(40, 24, (x) => (x < 20 ? 0 : 255)),
      100,
      200,
    );
    for (let y = 0; y < 24; y++) {
      const row = found.filter(([, fy]) => fy === y);
      expect(row, `row ${y}`).toHaveLength(1);
      expect([19, 20]).toContain(row[0]![0]);
    }
  });

  it("a white square on black gives a closed outline on its border: every border pixel has an edge within one pixel, none inside or far outside", () => {
    const inside = (x: number, y: number) => x >= 12 && x < 28 && y >= 12 && y < 28;
    const found = canny(
      grey(40, 40, (x, y) => (inside(x, y) ? 255 : 0)),
      100,
      200,
    );
    const isEdge = new Set(found.map(([x, y]) => `${x},${y}`));
    for (const [x, y] of found) {
      // Every edge lies within one pixel of the square's boundary (in x or y) and inside the square's band.
      const nearVertical = (Math.abs(x - 11.5) <= 1 || Math.abs(x - 27.5) <= 1) && y >= 10 && y <= 29;
      const nearHorizontal = (Math.abs(y - 11.5) <= 1 || Math.abs(y - 27.5) <= 1) && x >= 10 && x <= 29;
      expect(nearVertical || nearHorizontal, `edge at ${x},${y}`).toBe(true);
    }
    for (let t = 12; t < 28; t++) {
      for (const [x, y] of [
        [t, 12],
        [t, 27],
        [12, t],
        [27, t],
      ] as const) {
        const near = [-1, 0, 1].some((dx) => [-1, 0, 1].some((dy) => isEdge.has(`${x + dx},${y + dy}`)));
        expect(near, `border pixel ${x},${y}`).toBe(true);
      }
    }
  });

  it("hysteresis: a weak edge joined to a strong one is kept; the same weak edge alone is dropped", () => {
    // A vertical boundary whose contrast falls from 255 (top) to 40 (rows 24-31). The Sobel magnitude |gx| + |gy| of a
    // step of height v is at most 4v, so the rows of contrast 40 stay under the high threshold 170; the top rows
    // (contrast 255, magnitude over 500 after the blur) pass it, and the edge runs unbroken between them.
    const contrast = (y: number) => (y >= 24 ? 40 : Math.round(255 - (215 * y) / 24));
    const joined = grey(32, 32, (x, y) => (x < 16 ? 0 : contrast(y)));
    const alone = grey(32, 32, (x) => (x < 16 ? 0 : 40));
    const weakRows = (found: [number, number][]) =>
      new Set(found.filter(([x, y]) => y >= 24 && Math.abs(x - 15.5) <= 1).map(([, y]) => y));
    expect(weakRows(canny(joined, 10, 170)).size).toBe(8); // rows 24..31, kept through the connection
    expect(canny(alone, 10, 170)).toEqual([]);
    // With a high threshold under its magnitude, the weak step is an edge on its own.
    expect(weakRows(canny(alone, 10, 50)).size).toBe(8);
  });

  it("takes A1111's thresholds: low (A) and high (B), 100 and 200 by default, 1 to 255", () => {
    const p = findPreprocessor("canny");
    expect(p.thresholdA).toMatchObject({ min: 1, max: 255, default: 100 });
    expect(p.thresholdB).toMatchObject({ min: 1, max: 255, default: 200 });
  });
});
