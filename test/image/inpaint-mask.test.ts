import { describe, expect, it } from "vitest";
import type { Mask, RgbImage } from "../../src/image/codec.js";
import { cropImage, expandCropRegion, maskCropRegion } from "../../src/image/crop-region.js";
import { blurMask } from "../../src/image/mask-blur.js";
import { boxRadius, maskedFill } from "../../src/image/masked-fill.js";

function maskWith(width: number, height: number, on: (x: number, y: number) => number): Mask {
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = on(x, y);
  return { width, height, data };
}

describe("the masked region (A1111's only masked)", () => {
  it("is the bounding box of the non-zero pixels, grown by the padding within the image", () => {
    const m = maskWith(64, 48, (x, y) => (x >= 10 && x < 20 && y >= 5 && y < 8 ? 1 : 0));
    expect(maskCropRegion(m, 0)).toEqual({ x1: 10, y1: 5, x2: 20, y2: 8 });
    expect(maskCropRegion(m, 4)).toEqual({ x1: 6, y1: 1, x2: 24, y2: 12 });
    expect(maskCropRegion(m, 100)).toEqual({ x1: 0, y1: 0, x2: 64, y2: 48 });
    // A faint pixel (a blur's tail) counts; a mask of zeros has no region.
    const faint = maskWith(16, 16, (x, y) => (x === 15 && y === 0 ? 1 / 255 : 0));
    expect(maskCropRegion(faint, 0)).toEqual({ x1: 15, y1: 0, x2: 16, y2: 1 });
    expect(
      maskCropRegion(
        maskWith(16, 16, () => 0),
        8,
      ),
    ).toBeUndefined();
  });

  it("grows to the generation's aspect ratio, centred, shifted inside the image, clipped when too small", () => {
    // A 128x32 stroke worked at 512x512 becomes 128x128: 96 rows more, 48 above and 48 below.
    expect(expandCropRegion({ x1: 100, y1: 200, x2: 228, y2: 232 }, 512, 512, 1024, 1024)).toEqual({
      x1: 100,
      y1: 152,
      x2: 228,
      y2: 280,
    });
    // Near the bottom edge: the 96 rows go above.
    expect(expandCropRegion({ x1: 100, y1: 990, x2: 228, y2: 1022 }, 512, 512, 1024, 1024)).toEqual({
      x1: 100,
      y1: 896,
      x2: 228,
      y2: 1024,
    });
    // A tall stroke at 2:1 (width:height): 10x40 needs 80 wide; 35 to the left, 35 to the right, shifted off x = 0.
    expect(expandCropRegion({ x1: 5, y1: 0, x2: 15, y2: 40 }, 64, 32, 200, 100)).toEqual({
      x1: 0,
      y1: 0,
      x2: 80,
      y2: 40,
    });
    // An odd growth gives the extra pixel to the far side; an image too small for the ratio clips the region.
    expect(expandCropRegion({ x1: 10, y1: 10, x2: 13, y2: 20 }, 8, 8, 100, 100)).toEqual({
      x1: 7,
      y1: 10,
      x2: 17,
      y2: 20,
    });
    expect(expandCropRegion({ x1: 0, y1: 0, x2: 40, y2: 10 }, 8, 8, 40, 20)).toEqual({ x1: 0, y1: 0, x2: 40, y2: 20 });
  });

  it("crops the image's pixels", () => {
    const img: RgbImage = { width: 4, height: 3, data: Uint8Array.from({ length: 36 }, (_, i) => i) };
    expect(Array.from(cropImage(img, { x1: 1, y1: 1, x2: 3, y2: 3 }).data)).toEqual([
      15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32,
    ]);
  });
});

describe("the mask blur (A1111's mask_blur_x / _y)", () => {
  /** OpenCV's kernel for A1111's size, written out here: 2 * int(2.5 s + 0.5) + 1 taps of exp(-d^2 / 2 s^2). */
  function kernel(sigma: number): number[] {
    const r = Math.floor(2.5 * sigma + 0.5);
    const w = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma ** 2)));
    const s = w.reduce((a, b) => a + b, 0);
    return w.map((v) => v / s);
  }

  it("spreads a point as the product of the two 8-bit passes, over A1111's kernel size", () => {
    const sx = 4,
      sy = 2;
    const m = blurMask(
      maskWith(41, 41, (x, y) => (x === 20 && y === 20 ? 1 : 0)),
      sx,
      sy,
    );
    const kx = kernel(sx),
      ky = kernel(sy);
    expect(kx).toHaveLength(21);
    expect(ky).toHaveLength(11);
    for (let y = 0; y < 41; y++)
      for (let x = 0; x < 41; x++) {
        const dx = x - 20 + 10,
          dy = y - 20 + 5;
        const row = dx >= 0 && dx < 21 ? Math.round(kx[dx]! * 255) : 0;
        const expected = dy >= 0 && dy < 11 ? Math.round(ky[dy]! * row) : 0;
        expect(Math.round(m.data[y * 41 + x]! * 255), `${x},${y}`).toBe(expected);
      }
  });

  it("reflects at the border without repeating the edge pixel (OpenCV's default)", () => {
    // A point in column 1 reaches column 0 from both sides: from x = 1 and from its mirror image at x = -1.
    const m = blurMask(
      maskWith(12, 1, (x) => (x === 1 ? 1 : 0)),
      1,
      0,
    );
    const k = kernel(1); // 7 taps, centre 3
    expect(Math.round(m.data[0]! * 255)).toBe(Math.round((k[2]! + k[4]!) * 255));
    // Column 1 gets the point itself and its mirror image two columns away.
    expect(Math.round(m.data[1]! * 255)).toBe(Math.round((k[3]! + k[1]!) * 255));
    expect(Math.round(m.data[4]! * 255)).toBe(Math.round(k[0]! * 255));
  });

  it("leaves an axis with sigma 0 alone", () => {
    const m = maskWith(9, 9, (x, y) => (x === 4 && y === 4 ? 1 : 0));
    const b = blurMask(m, 2, 0);
    for (let y = 0; y < 9; y++) for (let x = 0; x < 9; x++) if (y !== 4) expect(b.data[y * 9 + x]).toBe(0);
    expect(blurMask(m, 0, 0)).toBe(m);
  });
});

describe("the fill of the masked content (A1111's inpainting_fill 0)", () => {
  it("uses PIL's box radius: three boxes have the Gaussian's variance", () => {
    for (const radius of [2, 4, 16, 64, 256]) {
      const r = boxRadius(radius, 3);
      const l = Math.floor(r),
        a = r - l;
      // Variance of one box of weights 1 on |i| <= l and a on |i| = l + 1, over its total 2r + 1.
      let v = 0;
      for (let i = -l; i <= l; i++) v += i * i;
      v += 2 * a * (l + 1) ** 2;
      v /= 2 * r + 1;
      expect(3 * v).toBeCloseTo(radius * radius, 6);
    }
  });

  it("paints the masked region with the kept region's colours and leaves the kept pixels unchanged", () => {
    const w = 40,
      h = 24;
    const mask = maskWith(w, h, (x) => (x >= 25 ? 1 : 0));
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) {
      const x = i % w;
      // Kept: a uniform orange; masked: what was there (blue), which must not leak into the fill.
      data.set(x < 25 ? [200, 120, 30] : [0, 0, 255], i * 3);
    }
    const out = maskedFill({ width: w, height: h, data }, mask);
    for (let i = 0; i < w * h; i++)
      expect(Array.from(out.data.subarray(i * 3, i * 3 + 3)), `pixel ${i}`).toEqual([200, 120, 30]);
    // With a kept region of two colours, a kept pixel is still exactly itself.
    const two = data.slice();
    for (let i = 0; i < w * h; i++) if (i % w < 5) two.set([10, 250, 60], i * 3);
    const out2 = maskedFill({ width: w, height: h, data: two }, mask);
    for (let i = 0; i < w * h; i++)
      if (i % w < 25)
        expect(Array.from(out2.data.subarray(i * 3, i * 3 + 3))).toEqual(Array.from(two.subarray(i * 3, i * 3 + 3)));
  });
});
