import { describe, expect, it } from "vitest";
import { CELL_HEIGHT } from "../../src/image/bitmap-font.js";
import type { RgbImage } from "../../src/image/codec.js";
import { composeGrid, drawText, labelScale, wrapLabel } from "../../src/image/grid-image.js";

const solid = (width: number, height: number, rgb: [number, number, number]): RgbImage => {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
};
const pixel = (img: RgbImage, x: number, y: number) => [
  ...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3),
];
const white = (w: number, h: number): RgbImage => solid(w, h, [255, 255, 255]);
/** Whether any pixel in the box is not paper white. */
const inked = (img: RgbImage, x0: number, y0: number, w: number, h: number) => {
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) if (pixel(img, x, y)[0] !== 255) return true;
  return false;
};

describe("the grid's bitmap font", () => {
  it('draws "A" and "g" as their bitmaps say, each font pixel a scale x scale square', () => {
    // The letters as drawn in the font: A's round top, bar and two legs; g's bowl and its tail below the line.
    const A = [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."];
    const g = [".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."];
    for (const [ch, bitmap] of [
      ["A", A],
      ["g", g],
    ] as const)
      for (const scale of [1, 3]) {
        const img = white(8 * scale, 10 * scale);
        drawText(img, ch, scale, scale, scale);
        for (let r = 0; r < 8; r++)
          for (let c = 0; c < 5; c++)
            for (const [dx, dy] of [
              [0, 0],
              [scale - 1, scale - 1],
            ])
              expect(
                pixel(img, scale + c * scale + dx!, scale + r * scale + dy!)[0],
                `${ch} row ${r} col ${c} at ${scale}x`,
              ).toBe(bitmap[r]![c] === "#" ? 0 : 255);
      }
  });

  it("draws a character outside printable ASCII as a question mark", () => {
    const a = white(6, 9);
    const b = white(6, 9);
    drawText(a, "é", 0, 0, 1);
    drawText(b, "?", 0, 0, 1);
    expect(a.data).toEqual(b.data);
  });
});

describe("label wrapping", () => {
  it("breaks at spaces, splits a long word, and ends a cut label with ...", () => {
    expect(wrapLabel("CFG Scale: 7", 10, 3)).toEqual(["CFG Scale:", "7"]);
    expect(wrapLabel("abcdefghij", 4, 5)).toEqual(["abcd", "efgh", "ij"]);
    expect(wrapLabel("one two three four five", 5, 2)).toEqual(["one", "tw..."]);
  });
});

describe("the X/Y/Z grid image", () => {
  const cells = [
    solid(64, 64, [200, 0, 0]),
    solid(64, 64, [0, 200, 0]),
    solid(64, 64, [0, 0, 200]),
    solid(64, 64, [200, 200, 0]),
  ];

  it("tiles the cells x across and y down, with room for the labels above and on the left", () => {
    const labels = { x: ["CFG Scale: 3", "CFG Scale: 7"], y: ["Euler a", "DDIM"], z: [""] };
    const { grid } = composeGrid(cells, labels, { legend: true });
    const s = labelScale(64, 64);
    const top = 2 * CELL_HEIGHT * s + 4 * s; // "CFG" / "Scale: 3": two lines, and padding above and below
    const left = grid.width - 2 * 64;
    expect(grid.height).toBe(top + 2 * 64);
    expect(left).toBeGreaterThanOrEqual(48); // A1111: three quarters of a cell for the y labels
    expect(pixel(grid, left + 10, top + 10)).toEqual([200, 0, 0]); // x0 y0
    expect(pixel(grid, left + 64 + 10, top + 10)).toEqual([0, 200, 0]); // x1 y0
    expect(pixel(grid, left + 10, top + 64 + 10)).toEqual([0, 0, 200]); // x0 y1
    expect(pixel(grid, left + 127, top + 127)).toEqual([200, 200, 0]); // x1 y1
    // Text above each column and left of each row; the corner stays blank.
    expect(inked(grid, left, 0, 64, top)).toBe(true);
    expect(inked(grid, left + 64, 0, 64, top)).toBe(true);
    expect(inked(grid, 0, top, left, 64)).toBe(true);
    expect(inked(grid, 0, top + 64, left, 64)).toBe(true);
    expect(inked(grid, 0, 0, left, top)).toBe(false);
  });

  it("draws no labels without the legend, and puts margins between the cells", () => {
    const labels = { x: ["a", "b"], y: ["c", "d"], z: [""] };
    const { grid } = composeGrid(cells, labels, { legend: false, margin: 4 });
    expect([grid.width, grid.height]).toEqual([132, 132]);
    expect(pixel(grid, 66, 10)).toEqual([255, 255, 255]);
    expect(pixel(grid, 70, 10)).toEqual([0, 200, 0]);
  });

  it("lays out one titled grid per z value side by side, and a legend line naming the axes", () => {
    const labels = { x: ["x1"], y: ["y1"], z: ["Steps: 10", "Steps: 20"] };
    const { grid, subGrids } = composeGrid([cells[0]!, cells[1]!], labels, { title: "X: CFG Scale  Z: Steps" });
    expect(subGrids).toHaveLength(2);
    const sub = subGrids[0]!;
    expect(grid.width).toBeGreaterThanOrEqual(2 * sub.width);
    // The second z value's cell is green, right of the first's red.
    const y = grid.height - 32;
    const row = Array.from({ length: grid.width }, (_, x) => pixel(grid, x, y).join());
    expect(row.indexOf("200,0,0")).toBeLessThan(row.indexOf("0,200,0"));
    // The legend's text is at the top left.
    expect(inked(grid, 0, 0, 60, CELL_HEIGHT * labelScale(64, 64) + 4)).toBe(true);
  });

  it("gives every slot the largest cell's size, centring smaller cells, and shows a missing cell dark", () => {
    const labels = { x: ["a", "b"], y: [""], z: [""] };
    const { grid } = composeGrid([solid(32, 32, [0, 0, 200]), undefined], labels, { legend: false });
    expect([grid.width, grid.height]).toEqual([64, 32]);
    expect(pixel(grid, 48, 16)).toEqual([64, 64, 64]);
    const { grid: mixed } = composeGrid([solid(64, 32, [0, 0, 200]), solid(32, 64, [200, 0, 0])], labels, {
      legend: false,
    });
    expect([mixed.width, mixed.height]).toEqual([128, 64]);
    expect(pixel(mixed, 10, 2)).toEqual([255, 255, 255]); // above the wide cell, centred in its slot
    expect(pixel(mixed, 10, 32)).toEqual([0, 0, 200]);
    expect(pixel(mixed, 64 + 32, 2)).toEqual([200, 0, 0]);
  });
});
