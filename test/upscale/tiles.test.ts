/**
 * Tiled upscaling: tiles cover the image with the overlap asked for, every tile the network sees is at most the
 * tile size (memory bounded), and with a network that has no border effects (each output pixel a function of one
 * input pixel) the cross-faded tiles reproduce the whole-image result exactly.
 */
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { tileStarts, upscaleInTiles } from "../../src/upscale/tiles.js";
import { mulberry32 } from "../helpers/seeded-random.js";

/** Nearest x`scale` with a per-pixel colour change: no border effects, so tiling must not change a pixel. */
function pointwise(scale: number, seen: Array<[number, number]>) {
  return async (tile: Float32Array, w: number, h: number) => {
    seen.push([w, h]);
    const ow = w * scale;
    const oh = h * scale;
    const out = new Float32Array(3 * ow * oh);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++) {
          const v = tile[c * w * h + Math.floor(y / scale) * w + Math.floor(x / scale)]!;
          out[c * ow * oh + y * ow + x] = c === 1 ? 1 - v : v * 1.3 - 0.1; // out of [0, 1] sometimes: clamped
        }
    return out;
  };
}

function image(w: number, h: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256));
}

describe("tiled upscaling", () => {
  it("tile starts cover the axis, end at its edge and share at least the overlap", () => {
    for (const [length, tile, overlap] of [
      [500, 192, 8],
      [193, 192, 8],
      [1000, 64, 16],
      [50, 192, 8],
    ] as const) {
      const s = tileStarts(length, tile, overlap);
      const t = Math.min(tile, length);
      expect(s[0]).toBe(0);
      expect(s[s.length - 1]! + t).toBe(length);
      for (let i = 1; i < s.length; i++) {
        expect(s[i - 1]! + t - s[i]!).toBeGreaterThanOrEqual(overlap);
      }
    }
  });

  for (const [w, h, tile, overlap, scale] of [
    [50, 37, 16, 4, 2],
    [260, 100, 96, 8, 4],
    [20, 20, 192, 8, 4],
    [64, 33, 8, 3, 1],
    [377, 60, 192, 8, 1], // three tiles over some columns: the weights are normalized
  ] as const) {
    it(`${w}x${h} in ${tile}px tiles (overlap ${overlap}, x${scale}) equals the whole image run at once`, async () => {
      const rgb = image(w, h, w * h);
      const seen: Array<[number, number]> = [];
      const tiled = await upscaleInTiles(rgb, w, h, scale, pointwise(scale, seen), { tile, overlap });
      const whole = await upscaleInTiles(rgb, w, h, scale, pointwise(scale, []), { tile: 0, overlap: 0 });
      expect(tiled.length).toBe((w * h * 9 * scale * scale) / 3);
      let worst = 0;
      for (let i = 0; i < whole.length; i++) worst = Math.max(worst, Math.abs(tiled[i]! - whole[i]!));
      expect(worst).toBeLessThanOrEqual(1); // rounding of the cross-faded sums
      expect(seen.every(([tw, th]) => tw <= tile && th <= tile)).toBe(true);
      if (w > tile) expect(seen.length).toBeGreaterThan(1);
    });
  }

  it("a seam would show: tiles that disagree are cross-faded, not cut (the overlap takes values between both)", async () => {
    // Each tile paints its own constant: without blending the output would jump from one to the next.
    let n = 0;
    const constant = async (_t: Float32Array, w: number, h: number) => new Float32Array(3 * w * h).fill(n++ % 2);
    const out = await upscaleInTiles(new Uint8Array(40 * 1 * 3), 40, 1, 1, constant, { tile: 24, overlap: 8 });
    const red = Array.from({ length: 40 }, (_, x) => out[x * 3]!);
    expect(red[0]).toBe(0);
    expect(red[39]).toBe(255);
    const between = red.filter((v) => v > 0 && v < 255);
    expect(between.length).toBeGreaterThanOrEqual(7);
    for (let x = 1; x < 40; x++) expect(red[x]!).toBeGreaterThanOrEqual(red[x - 1]!);
  });

  it("stops between tiles when the signal is aborted", async () => {
    const controller = new AbortController();
    let calls = 0;
    const net = async (t: Float32Array, w: number, h: number) => {
      if (++calls === 2) controller.abort();
      return new Float32Array(3 * w * h).fill(t[0]!);
    };
    await expect(
      upscaleInTiles(image(100, 100, 1), 100, 100, 1, net, { tile: 32, overlap: 4, signal: controller.signal }),
    ).rejects.toThrow(/abort/i);
    expect(calls).toBe(2);
  });

  it("an overlap of half the tile or more is refused with the fix", async () => {
    await expect(
      upscaleInTiles(image(100, 100, 1), 100, 100, 1, pointwise(1, []), { tile: 16, overlap: 8 }),
    ).rejects.toThrow(InputError);
  });
});
