import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { latentPreview, latentPreviewPng, SD1_LATENT_RGB } from "../../src/image/preview.js";
import { signedToByte } from "../../src/image/tensor.js";

/** [1, 4, h, w] latents with every pixel set to the same 4 channel values. */
function uniform(values: readonly number[], h: number, w: number, n = 1): Float32Array {
  const out = new Float32Array(n * 4 * h * w);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < 4; c++) out.fill(values[c]!, (b * 4 + c) * h * w, (b * 4 + c + 1) * h * w);
  return out;
}

describe("latent preview", () => {
  it("shows an all-zero latent as mid grey", () => {
    const img = latentPreview(uniform([0, 0, 0, 0], 2, 3), [1, 4, 2, 3]);
    expect([img.width, img.height]).toEqual([3, 2]);
    expect(new Set(img.data)).toEqual(new Set([128]));
  });

  it("applies the 4x3 SD1 map per pixel", () => {
    const lat = [1.5, -0.5, 0.25, -1];
    const img = latentPreview(uniform(lat, 1, 1), [1, 4, 1, 1]);
    const expected = [0, 1, 2].map((k) =>
      signedToByte(lat.reduce((s, v, c) => s + v * SD1_LATENT_RGB.matrix[c]![k]!, SD1_LATENT_RGB.bias[k]!)),
    );
    expect(Array.from(img.data)).toEqual(expected);
  });

  it("picks the requested image of a batch", () => {
    const lat = new Float32Array([...uniform([0, 0, 0, 0], 1, 1), ...uniform([3, 3, 0, 0], 1, 1)]);
    expect(Array.from(latentPreview(lat, [2, 4, 1, 1], { index: 1 }).data)).not.toEqual([128, 128, 128]);
    expect(Array.from(latentPreview(lat, [2, 4, 1, 1], { index: 0 }).data)).toEqual([128, 128, 128]);
  });

  it("upscales x8 with nearest neighbour so each latent pixel becomes an 8x8 block", () => {
    const lat = new Float32Array(4 * 2);
    lat[0] = 3; // channel 0 of the left pixel: brighter
    const small = latentPreview(lat, [1, 4, 1, 2]);
    const big = latentPreview(lat, [1, 4, 1, 2], { scale: 8 });
    expect([big.width, big.height]).toEqual([16, 8]);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 16; x++) {
        const src = x < 8 ? 0 : 1;
        expect(Array.from(big.data.subarray(3 * (y * 16 + x), 3 * (y * 16 + x) + 3))).toEqual(
          Array.from(small.data.subarray(3 * src, 3 * src + 3)),
        );
      }
    }
  });

  it("encodes the preview as a PNG of latent size times the scale", async () => {
    const png = await latentPreviewPng(uniform([0.5, 0.2, -0.1, 0.3], 8, 8), [1, 4, 8, 8], { scale: 8 });
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 64, 64]);
  });

  it("refuses latents whose channel count does not match the factors", () => {
    expect(() => latentPreview(new Float32Array(16), [1, 16, 1, 1])).toThrow(/16 channels/);
  });
});
