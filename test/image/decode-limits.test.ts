import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import {
  decodeImage,
  decodeMask,
  encodePng,
  inputPixelLimit,
  screenImage,
  type RgbImage,
} from "../../src/image/codec.js";
import { solidPng, withChunks, zTxtBombs } from "../helpers/png-bombs.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "diffuse-decode-limits-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof Error)) throw new Error("expected a rejection");
  return e;
}

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37) & 255;
  return { width, height, data };
}

describe("decoding refuses images by their declared size, before decoding them", () => {
  // 16383x16383 is the largest size libvips' default limit lets through; decoded to RGB it is 805 MB.
  const bomb = solidPng(16383, 16383);

  it("a 16383x16383 PNG of a few KB is refused with InputError naming its size and the default limit (8192x8192)", async () => {
    expect(bomb.length).toBeLessThan(100_000);
    for (const decode of [decodeImage, decodeMask]) {
      const e = await rejection(decode(bomb, { name: "the init image" }));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toMatch(/^the init image is 16383x16383 /);
      expect(e.message).toContain("8192x8192");
    }
  });

  it("a file on disk is refused the same way, the message naming the path", async () => {
    const path = join(dir, "huge.png");
    await writeFile(path, bomb);
    const e = await rejection(decodeImage(path));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toContain(`${path} is 16383x16383`);
  });

  it("a caller's bound derived from its largest output side (twice the side in each dimension) is honoured", async () => {
    // Outputs of at most 16x16 accept inputs of up to 32x32 = 1024 pixels.
    expect(inputPixelLimit(16)).toBe(1024);
    const over = await rejection(decodeImage(solidPng(33, 32), { maxPixels: inputPixelLimit(16) }));
    expect(over).toBeInstanceOf(InputError);
    expect(over.message).toContain("33x32");
    expect(over.message).toContain("32x32");
    const ok = await decodeImage(solidPng(32, 32), { maxPixels: inputPixelLimit(16) });
    expect([ok.width, ok.height]).toEqual([32, 32]);
  });

  it("screenImage reports the declared size of an image without decoding it, and refuses the bomb", async () => {
    const png = await encodePng(gradient(24, 40));
    const screened = await screenImage(png);
    expect([screened.width, screened.height]).toEqual([24, 40]);
    const e = await rejection(screenImage(bomb, { name: "the mask" }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/^the mask is 16383x16383 /);
  });
});

describe("decoding never inflates a PNG's text chunks", () => {
  // libvips inflates every text chunk while reading a PNG's header (here 100 chunks of 15 MB each took 19 s and
  // 1.4 GB for the header, 50 s and 4.5 GB for the decode); the pixels never need them, so they are dropped
  // before sharp sees the file.
  const bombs = zTxtBombs(100, 15 * 2 ** 20);

  it("screenImage hands on a PNG's bytes without its text chunks, for files and for bytes", async () => {
    const image = gradient(8, 8);
    const plain = await encodePng(image);
    const png = withChunks(plain, bombs);
    const path = join(dir, "bomb.png");
    await writeFile(path, png);
    for (const source of [png, path]) {
      const screened = await screenImage(source);
      expect(Buffer.from(screened.bytes).equals(plain)).toBe(true);
      expect([screened.width, screened.height]).toEqual([8, 8]);
    }
  });

  // The timeout only keeps a regression from running for minutes: this takes a fraction of a second.
  it("decodes a PNG carrying 100 zTXt chunks that would inflate to 1.5 GB, returning its pixels", {
    timeout: 30_000,
  }, async () => {
    const image = gradient(8, 8);
    const png = withChunks(await encodePng(image), bombs);
    expect(png.length).toBeLessThan(2_000_000);
    const back = await decodeImage(png);
    expect([back.width, back.height]).toEqual([8, 8]);
    expect(Buffer.from(back.data).equals(Buffer.from(image.data))).toBe(true);
  });
});
