import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeImage, type RgbImage } from "../../src/image/codec.js";
import { InputError } from "../../src/errors.js";
import {
  decodeDwtDct,
  decodeDwtDctFloat,
  embedDwtDct,
  embedDwtDctFloat,
  SD1_WATERMARK_BITS,
  SDXL_WATERMARK_BITS,
  type FloatRgbImage,
} from "../../src/responsible/watermark/dwt-dct.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

interface WatermarkCase {
  name: string;
  source_rgb_png: string;
  sd1_marked_rgb_png: string;
  sd1_decoded_bits_of_marked: string;
  sd1_decoded_bits_of_source: string;
  sdxl_decoded_bits: string;
}

const DIR = ["goldens", "watermark"];
const cases: WatermarkCase[] = HAVE_REFERENCE
  ? (JSON.parse(readFileSync(ref(...DIR, "watermark.json"), "utf8")) as { cases: WatermarkCase[] }).cases
  : [];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** The fixture stores SDXL's output as OpenCV left it: HWC float32 in BGR order. */
function bgrToRgb(bgr: Float32Array): Float32Array {
  const rgb = new Float32Array(bgr.length);
  for (let i = 0; i < bgr.length; i += 3) {
    rgb[i] = bgr[i + 2]!;
    rgb[i + 1] = bgr[i + 1]!;
    rgb[i + 2] = bgr[i]!;
  }
  return rgb;
}

function asFloat(image: RgbImage): FloatRgbImage {
  return { width: image.width, height: image.height, data: Float32Array.from(image.data) };
}

describe("SD1 and SDXL messages", () => {
  it("SD1's message is the 136 bits of 'StableDiffusionV1', most significant bit first", () => {
    expect(SD1_WATERMARK_BITS).toHaveLength(136);
    // 'S' = 0x53
    expect(SD1_WATERMARK_BITS.slice(0, 8).join("")).toBe("01010011");
  });

  it("SDXL's message is its fixed 48-bit pattern", () => {
    expect(SDXL_WATERMARK_BITS.join("")).toBe("101100111110110010010000011110111011000110011110");
  });

  it("refuses images under 256x256 pixels, as the reference does", () => {
    const small: RgbImage = { width: 255, height: 256, data: new Uint8Array(255 * 256 * 3) };
    expect(() => embedDwtDct(small, SD1_WATERMARK_BITS)).toThrow(InputError);
    expect(() => decodeDwtDct(small, 136)).toThrow(InputError);
  });
});

describe.skipIf(!HAVE_REFERENCE)("dwtDct parity with the invisible-watermark reference", () => {
  const sdxl = HAVE_REFERENCE ? golden(...DIR, "sdxl_float.safetensors") : undefined;

  for (const c of cases) {
    describe(c.name, () => {
      it("embeds StableDiffusionV1 as the reference encoder did on uint8 (within 1 level per channel)", async () => {
        const source = await decodeImage(ref(...DIR, c.source_rgb_png));
        const expected = await decodeImage(ref(...DIR, c.sd1_marked_rgb_png));
        const ours = embedDwtDct(source, SD1_WATERMARK_BITS);
        expect(maxAbsDiff(ours.data, expected.data)).toBeLessThanOrEqual(1);
      });

      it("decodes the same 136 bits as the reference decoder from the marked and the unmarked image", async () => {
        const source = await decodeImage(ref(...DIR, c.source_rgb_png));
        const marked = await decodeImage(ref(...DIR, c.sd1_marked_rgb_png));
        expect(decodeDwtDct(marked, 136).join("")).toBe(c.sd1_decoded_bits_of_marked);
        expect(decodeDwtDct(source, 136).join("")).toBe(c.sd1_decoded_bits_of_source);
      });

      it("embeds SDXL's 48 bits as SDXL did on float32 0..255 pixels (abs error < 1e-3), and decodes the reference's bits", async () => {
        const source = await decodeImage(ref(...DIR, c.source_rgb_png));
        const expected = bgrToRgb(sdxl!.get(`${c.name}/sdxl_out_bgr_float`));
        expect(sdxl!.shape(`${c.name}/sdxl_out_bgr_float`)).toEqual([source.height, source.width, 3]);
        const ours = embedDwtDctFloat(asFloat(source), SDXL_WATERMARK_BITS);
        expect(maxAbsDiff(ours.data, expected)).toBeLessThan(1e-3);
        const reference = { width: source.width, height: source.height, data: expected };
        expect(decodeDwtDctFloat(reference, 48).join("")).toBe(c.sdxl_decoded_bits);
      });
    });
  }
});
