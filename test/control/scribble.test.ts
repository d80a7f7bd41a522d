import { describe, expect, it } from "vitest";
import { findPreprocessor } from "../../src/control/preprocessors.js";
import type { RgbImage } from "../../src/image/codec.js";

/** An image of `paper` with `ink` on the pixels where `stroke(x, y)` holds. */
function drawing(
  w: number,
  h: number,
  paper: [number, number, number],
  ink: [number, number, number],
  stroke: (x: number, y: number) => boolean,
): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(stroke(x, y) ? ink : paper, (y * w + x) * 3);
  return { width: w, height: h, data };
}

/** The map's pixels as 0/1 per pixel, checking that the three channels agree and are 0 or 255. */
function binary(map: RgbImage): number[] {
  const out: number[] = [];
  for (let i = 0; i < map.width * map.height; i++) {
    const [r, g, b] = map.data.subarray(i * 3, i * 3 + 3);
    expect(r === g && g === b && (r === 0 || r === 255)).toBe(true);
    out.push(r === 255 ? 1 : 0);
  }
  return out;
}

const diagonal = (x: number, y: number) => Math.abs(x - y) <= 1;
const truth = (w: number, h: number, stroke: (x: number, y: number) => boolean) =>
  Array.from({ length: w * h }, (_, i) => (stroke(i % w, Math.floor(i / w)) ? 1 : 0));
const run = (image: RgbImage, threshold = 128) =>
  findPreprocessor("scribble").run(image, { thresholdA: threshold, thresholdB: 0 });

describe("scribble preprocessor: a sketch becomes the white-on-black map scribble ControlNets were trained on", () => {
  it("black pen on white paper: the strokes become white (255) and the paper black (0), nothing else", () => {
    const img = drawing(24, 16, [255, 255, 255], [0, 0, 0], diagonal);
    expect(binary(run(img))).toEqual(truth(24, 16, diagonal));
  });

  it("dark grey pencil on light grey paper, and blue ink on yellow paper, read by their luminance", () => {
    expect(binary(run(drawing(20, 20, [200, 200, 200], [60, 60, 60], diagonal)))).toEqual(truth(20, 20, diagonal));
    expect(binary(run(drawing(20, 20, [255, 230, 0], [0, 0, 255], diagonal)))).toEqual(truth(20, 20, diagonal));
  });

  it("a map that is already white strokes on black keeps its polarity (the paper is what most of the image is)", () => {
    const map = drawing(20, 20, [0, 0, 0], [255, 255, 255], diagonal);
    expect(binary(run(map))).toEqual(truth(20, 20, diagonal));
  });

  it("threshold A decides what counts as ink: a mid-grey (100) stroke is ink under 128, paper under 64", () => {
    const img = drawing(20, 20, [255, 255, 255], [100, 100, 100], diagonal);
    expect(binary(run(img, 128))).toEqual(truth(20, 20, diagonal));
    expect(binary(run(img, 64)).every((v) => v === 0)).toBe(true);
  });

  it("is listed with its threshold's range and default, and 'invert' maps white-background line art by plain inversion", () => {
    const scribble = findPreprocessor("scribble");
    expect(scribble.thresholdA).toMatchObject({ min: 1, max: 255, default: 128 });
    const invert = findPreprocessor("invert (from white bg & black line)");
    expect(invert.name).toBe("invert");
    const out = invert.run(
      { width: 2, height: 1, data: Uint8Array.of(255, 255, 255, 10, 20, 30) },
      { thresholdA: 0, thresholdB: 0 },
    );
    expect([...out.data]).toEqual([0, 0, 0, 245, 235, 225]);
  });
});
