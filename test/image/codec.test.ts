import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { decodeImage, decodeMask, encodePng, resizeImage, type RgbImage } from "../../src/image/codec.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "diffuse-image-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      data[i] = (x * 37) & 255;
      data[i + 1] = (y * 59) & 255;
      data[i + 2] = (x * y) & 255;
    }
  }
  return { width, height, data };
}

describe("image codec", () => {
  it("round-trips RGB pixels through PNG losslessly", async () => {
    const img = gradient(13, 7);
    const png = await encodePng(img);
    const back = await decodeImage(png);
    expect(back.width).toBe(13);
    expect(back.height).toBe(7);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
  });

  it("reads a PNG from a path", async () => {
    const path = join(dir, "g.png");
    await writeFile(path, await encodePng(gradient(4, 4)));
    expect((await decodeImage(path)).data.length).toBe(48);
  });

  it("decodes JPEG and WebP to RGB of the right size", async () => {
    const img = gradient(16, 8);
    const raw = { raw: { width: 16, height: 8, channels: 3 as const } };
    for (const encoded of [
      await sharp(img.data, raw).jpeg().toBuffer(),
      await sharp(img.data, raw).webp().toBuffer(),
    ]) {
      const back = await decodeImage(encoded);
      expect([back.width, back.height, back.data.length]).toEqual([16, 8, 16 * 8 * 3]);
    }
  });

  it("flattens transparency onto white for sketches", async () => {
    const rgba = Buffer.from([255, 0, 0, 0, 0, 0, 0, 255]); // transparent red, opaque black
    const png = await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    const back = await decodeImage(png);
    expect(Array.from(back.data)).toEqual([255, 255, 255, 0, 0, 0]);
  });

  it("expands greyscale images to three equal channels", async () => {
    const png = await sharp(Buffer.from([0, 200]), { raw: { width: 2, height: 1, channels: 1 } })
      .png()
      .toBuffer();
    expect(Array.from((await decodeImage(png)).data)).toEqual([0, 0, 0, 200, 200, 200]);
  });

  it("applies EXIF orientation so photos come out upright", async () => {
    const img = gradient(4, 2);
    const jpeg = await sharp(img.data, { raw: { width: 4, height: 2, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const back = await decodeImage(jpeg);
    expect([back.width, back.height]).toEqual([2, 4]);
  });

  it("reduces 16-bit PNGs to 8 bits per channel", async () => {
    const png = await sharp(new Uint16Array([0, 65535, 30000, 65535]), { raw: { width: 2, height: 2, channels: 1 } })
      .toColourspace("grey16")
      .png()
      .toBuffer();
    const back = await decodeImage(png);
    expect(Array.from(back.data)).toEqual([0, 0, 0, 255, 255, 255, 117, 117, 117, 255, 255, 255]);
  });

  it("stretches to the requested size ignoring aspect ratio (just resize)", async () => {
    const png = await encodePng(gradient(40, 10));
    const back = await decodeImage(png, { width: 16, height: 24 });
    expect([back.width, back.height, back.data.length]).toEqual([16, 24, 16 * 24 * 3]);
    const resized = await resizeImage(gradient(40, 10), 8, 8);
    expect([resized.width, resized.height, resized.data.length]).toEqual([8, 8, 192]);
  });

  it("keeps a uniform colour uniform when resizing", async () => {
    const flat: RgbImage = { width: 5, height: 3, data: new Uint8Array(45).fill(77) };
    const out = await resizeImage(flat, 17, 11);
    expect(new Set(out.data)).toEqual(new Set([77]));
  });

  it("reads a mask as 0..1 with white meaning repaint and transparent meaning keep", async () => {
    const rgba = Buffer.from([255, 255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 0]);
    const png = await sharp(rgba, { raw: { width: 3, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    const mask = await decodeMask(png);
    expect([mask.width, mask.height]).toEqual([3, 1]);
    expect(Array.from(mask.data)).toEqual([1, 0, 0]);
  });

  it("resizes a mask to the requested size", async () => {
    const png = await sharp(Buffer.alloc(64, 255), { raw: { width: 8, height: 8, channels: 1 } })
      .png()
      .toBuffer();
    const mask = await decodeMask(png, { width: 4, height: 2 });
    expect([mask.width, mask.height]).toEqual([4, 2]);
    expect(Array.from(mask.data)).toEqual(new Array(8).fill(1));
  });

  it("rejects a text file passed as an image with InputError naming the file and the formats", async () => {
    const path = join(dir, "notes.png");
    await writeFile(path, "this is not an image\n");
    const err = await decodeImage(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(/\bPNG\b/);
    expect((err as Error).message).toMatch(/\bJPEG\b/);
  });

  it("rejects a missing file with InputError saying it was not found", async () => {
    const path = join(dir, "nope.png");
    const err = await decodeMask(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(/not found/);
  });

  it("rejects garbage bytes with InputError using the given name", async () => {
    const err = await decodeImage(new TextEncoder().encode("hello"), { name: "the uploaded init image" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain("the uploaded init image");
  });

  it("rejects a non-positive or fractional resize target with InputError", async () => {
    const png = await encodePng(gradient(2, 2));
    await expect(decodeImage(png, { width: 0, height: 8 })).rejects.toBeInstanceOf(InputError);
    await expect(decodeImage(png, { width: 8 })).rejects.toBeInstanceOf(InputError);
    await expect(resizeImage(gradient(2, 2), 7.5, 8)).rejects.toBeInstanceOf(InputError);
  });
});
