import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { encodeImage } from "../../src/image/encode-image.js";
import { readImageParameters } from "../../src/image/image-parameters.js";
import { getPngText } from "../../src/image/png-text.js";

const WIDTH = 40,
  HEIGHT = 24;
const image = {
  width: WIDTH,
  height: HEIGHT,
  data: Uint8Array.from({ length: WIDTH * HEIGHT * 3 }, (_, i) => (i * 13 + (i >> 5)) & 255),
};
const PARAMETERS =
  "ein roter Kreis über dem Wasser, 日本の猫 (cat:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 40x24";

/**
 * The EXIF UserComment read with nothing from src/: the bytes after "UNICODE\0" are UTF-16 in the TIFF's
 * byte order, as A1111 (piexif) writes and reads them. sharp hands back the EXIF block ("Exif\0\0" + TIFF).
 */
function userCommentOf(exif: Buffer): string {
  const tiff = exif.subarray(exif.indexOf("II*\0") >= 0 ? exif.indexOf("II*\0") : exif.indexOf("MM\0*"));
  const big = tiff.toString("latin1", 0, 2) === "MM";
  const u16 = (o: number) => (big ? tiff.readUInt16BE(o) : tiff.readUInt16LE(o));
  const u32 = (o: number) => (big ? tiff.readUInt32BE(o) : tiff.readUInt32LE(o));
  const entry = (ifd: number, tag: number) => {
    for (let i = 0; i < u16(ifd); i++) if (u16(ifd + 2 + i * 12) === tag) return ifd + 2 + i * 12;
    throw new Error(`tag ${tag.toString(16)} not found`);
  };
  const exifIfd = u32(entry(u32(4), 0x8769) + 8);
  const comment = entry(exifIfd, 0x9286);
  const count = u32(comment + 4);
  const value = tiff.subarray(u32(comment + 8), u32(comment + 8) + count);
  expect(value.toString("latin1", 0, 8)).toBe("UNICODE\0");
  const text = Buffer.from(value.subarray(8));
  if (big) text.swap16();
  return text.toString("utf16le");
}

describe("encodeImage writes the format asked for, with the generation parameters", () => {
  it("PNG: the parameters in a text chunk, as before", async () => {
    const png = await encodeImage(image, "png", PARAMETERS);
    expect((await sharp(png).metadata()).format).toBe("png");
    expect(getPngText(png, "parameters")).toBe(PARAMETERS);
    expect(await readImageParameters(png)).toMatchObject({ format: "png", parameters: PARAMETERS });
  });

  it("JPEG: a JPEG whose EXIF UserComment holds the parameters as A1111 writes them (UNICODE prefix)", async () => {
    const jpeg = await encodeImage(image, "jpeg", PARAMETERS);
    expect([...jpeg.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    const meta = await sharp(jpeg).metadata();
    expect(meta).toMatchObject({ format: "jpeg", width: WIDTH, height: HEIGHT });
    expect(userCommentOf(meta.exif!)).toBe(PARAMETERS);
    expect(await readImageParameters(jpeg)).toMatchObject({ format: "jpeg", parameters: PARAMETERS });
    // Lossy but close: the pixels decode to the image.
    const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum += Math.abs(data[i]! - image.data[i]!);
    expect(sum / data.length).toBeLessThan(40);
  });

  it("WebP: an extended WebP (VP8X) with an EXIF chunk holding the parameters; the RIFF size is the file's", async () => {
    const webp = await encodeImage(image, "webp", PARAMETERS);
    expect(webp.toString("latin1", 0, 4)).toBe("RIFF");
    expect(webp.toString("latin1", 8, 16)).toBe("WEBPVP8X");
    expect(webp.readUInt32LE(4)).toBe(webp.length - 8);
    const meta = await sharp(webp).metadata();
    expect(meta).toMatchObject({ format: "webp", width: WIDTH, height: HEIGHT });
    expect(userCommentOf(meta.exif!)).toBe(PARAMETERS);
    expect(await readImageParameters(webp)).toMatchObject({ format: "webp", parameters: PARAMETERS });
    expect((await sharp(webp).raw().toBuffer()).length).toBe(WIDTH * HEIGHT * 3);
  });

  it("JPEG parameters too long for one EXIF segment (64 KB) are refused with the fix, not truncated", async () => {
    const long = "a".repeat(40_000);
    await expect(encodeImage(image, "jpeg", long)).rejects.toThrow(InputError);
    await expect(encodeImage(image, "jpeg", long)).rejects.toThrow(/64 KB.*\.png|\.png.*64 KB/);
    // WebP's EXIF chunk has no such limit.
    expect((await readImageParameters(await encodeImage(image, "webp", long))).parameters).toBe(long);
  });
});

describe("readImageParameters reads what other tools wrote", () => {
  it("an ASCII UserComment in a little-endian EXIF block (as libvips writes it)", async () => {
    const jpeg = await sharp(Buffer.from(image.data), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
      .withExif({ IFD2: { UserComment: "a cat\nSteps: 5, Seed: 1" } })
      .jpeg()
      .toBuffer();
    expect((await readImageParameters(jpeg)).parameters).toBe("a cat\nSteps: 5, Seed: 1");
  });

  it("an image without parameters gives none, and bytes that are no image an InputError naming the formats", async () => {
    const plain = await sharp(Buffer.from(image.data), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
      .jpeg()
      .toBuffer();
    expect((await readImageParameters(plain)).parameters).toBeUndefined();
    await expect(readImageParameters(Buffer.from("GIF89a......"), "x.gif")).rejects.toThrow(/x\.gif.*PNG, JPEG.*WebP/);
  });
});
