import { deflateSync } from "node:zlib";
import * as zlib from "node:zlib";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { encodePng } from "../../src/image/codec.js";
import { crc32, crc32Table, getPngText, readPngText, stripPngText, writePngText } from "../../src/image/png-text.js";
import { pngChunk as rawChunk, withChunks } from "../helpers/png-bombs.js";

let png: Buffer;
beforeAll(async () => {
  const data = Uint8Array.from({ length: 8 * 6 * 3 }, (_, i) => (i * 7) & 255);
  png = await encodePng({ width: 8, height: 6, data });
});

/** Chunk types in file order. */
function chunkTypes(bytes: Uint8Array): string[] {
  const types: string[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let pos = 8; pos < bytes.length; ) {
    const len = view.getUint32(pos);
    types.push(Buffer.from(bytes.subarray(pos + 4, pos + 8)).toString("latin1"));
    pos += 12 + len;
  }
  return types;
}

describe("PNG text chunks", () => {
  it("computes the standard CRC-32 with the table fallback, agreeing with zlib where Node has it", () => {
    const check = new TextEncoder().encode("123456789");
    expect(crc32Table(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
    const big = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 31 + 7) & 255);
    if (typeof (zlib as { crc32?: unknown }).crc32 === "function") expect(crc32Table(big)).toBe(crc32(big));
  });

  it("writes a Latin-1 value as tEXt and reads it back", () => {
    const text = "a café at dusk, (masterpiece:1.2)\nNegative prompt: blurry\nSteps: 20, Seed: 42";
    const out = writePngText(png, { parameters: text });
    expect(readPngText(out)).toEqual([{ keyword: "parameters", text, chunk: "tEXt", compressed: false }]);
    expect(chunkTypes(out).filter((t) => t === "tEXt")).toHaveLength(1);
  });

  it("writes a UTF-8 value with emoji and CJK as iTXt and reads it back", () => {
    const text = "a robot dog 🐕 looking into a mirror, 鏡の中の犬, 거울";
    const out = writePngText(png, { parameters: text });
    const [t] = readPngText(out);
    expect(t).toMatchObject({
      keyword: "parameters",
      text,
      chunk: "iTXt",
      compressed: false,
      languageTag: "",
      translatedKeyword: "",
    });
    expect(chunkTypes(out)).toContain("iTXt");
    expect(chunkTypes(out)).not.toContain("tEXt");
  });

  it("writes compressed chunks when asked (zTXt for Latin-1, compressed iTXt otherwise)", () => {
    const out = writePngText(png, { a: "plain ".repeat(50), b: "ünïcødé ✓ ".repeat(50) }, { compress: true });
    const texts = readPngText(out);
    expect(texts.map((t) => [t.keyword, t.chunk, t.compressed])).toEqual([
      ["a", "zTXt", true],
      ["b", "iTXt", true],
    ]);
    expect(texts[0]!.text).toBe("plain ".repeat(50));
    expect(texts[1]!.text).toBe("ünïcødé ✓ ".repeat(50));
  });

  it("keeps the PNG decodable by sharp, which sees the same text (so the CRCs are right)", async () => {
    const out = writePngText(png, { parameters: "Steps: 20", Comment: "日本語" });
    const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    const { data: orig } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([8, 6]);
    expect(data.equals(orig)).toBe(true);
    const comments = (await sharp(out).metadata()).comments ?? [];
    expect(comments).toEqual(
      expect.arrayContaining([
        { keyword: "parameters", text: "Steps: 20" },
        { keyword: "Comment", text: "日本語" },
      ]),
    );
  });

  it("places text before the image data and leaves the other chunks in order", () => {
    const out = writePngText(png, { parameters: "x" });
    const types = chunkTypes(out);
    expect(types[0]).toBe("IHDR");
    expect(types.indexOf("tEXt")).toBeLessThan(types.indexOf("IDAT"));
    expect(types.filter((t) => t !== "tEXt")).toEqual(chunkTypes(png));
    expect(types.at(-1)).toBe("IEND");
  });

  it("replaces an existing chunk with the same keyword and keeps other keywords", () => {
    const once = writePngText(png, [
      { keyword: "parameters", text: "old" },
      { keyword: "Software", text: "diffuse" },
    ]);
    const twice = writePngText(once, { parameters: "new ✓" });
    expect(readPngText(twice).map((t) => [t.keyword, t.text])).toEqual([
      ["Software", "diffuse"],
      ["parameters", "new ✓"],
    ]);
    expect(getPngText(twice, "parameters")).toBe("new ✓");
    expect(getPngText(twice, "absent")).toBeUndefined();
  });

  it("reads hand-made zTXt and compressed iTXt chunks with language tags", () => {
    const ztxt = rawChunk(
      "zTXt",
      Buffer.concat([Buffer.from("Title\0\0", "latin1"), deflateSync(Buffer.from("Grüße", "latin1"))]),
    );
    const itxt = rawChunk(
      "iTXt",
      Buffer.concat([
        Buffer.from("Description\0\x01\x00ja\0", "latin1"),
        Buffer.from("説明\0", "utf8"),
        deflateSync(Buffer.from("夕暮れの灯台", "utf8")),
      ]),
    );
    const texts = readPngText(withChunks(png, [ztxt, itxt]));
    expect(texts).toEqual([
      { keyword: "Title", text: "Grüße", chunk: "zTXt", compressed: true },
      {
        keyword: "Description",
        text: "夕暮れの灯台",
        chunk: "iTXt",
        compressed: true,
        languageTag: "ja",
        translatedKeyword: "説明",
      },
    ]);
  });

  it("skips a text chunk whose CRC does not match", () => {
    const bad = rawChunk("tEXt", Buffer.from("parameters\0tampered", "latin1"));
    bad[bad.length - 1]! ^= 0xff;
    expect(readPngText(withChunks(png, [bad]))).toEqual([]);
  });

  it("rejects non-PNG input with InputError", () => {
    const jpegish = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => readPngText(jpegish, "photo.jpg")).toThrow(InputError);
    expect(() => readPngText(jpegish, "photo.jpg")).toThrow(/photo\.jpg is not a PNG/);
    expect(() => writePngText(Buffer.from("hello"), { a: "b" })).toThrow(InputError);
  });

  it("rejects a truncated PNG with InputError", () => {
    expect(() => readPngText(png.subarray(0, png.length - 20))).toThrow(/truncated/);
  });

  it("rejects keywords PNG does not allow and text containing NUL", () => {
    expect(() => writePngText(png, { "": "x" })).toThrow(InputError);
    expect(() => writePngText(png, { " lead": "x" })).toThrow(InputError);
    expect(() => writePngText(png, { ["k".repeat(80)]: "x" })).toThrow(InputError);
    expect(() => writePngText(png, { "clé✓": "x" })).toThrow(InputError);
    expect(() => writePngText(png, { parameters: "a\0b" })).toThrow(InputError);
  });

  it("refuses text that inflates past 16 MiB in all, however it is split across chunks", () => {
    // Three zTXt chunks of 6 MiB each: every one is under the limit, together they are over it.
    const six = deflateSync(Buffer.alloc(6 * 2 ** 20, 0x41));
    const bombs = [0, 1, 2].map((i) => rawChunk("zTXt", Buffer.concat([Buffer.from(`k${i}\0\0`, "latin1"), six])));
    const bytes = withChunks(png, bombs);
    expect(bytes.length).toBeLessThan(100_000);
    expect(() => readPngText(bytes, "upload.png")).toThrow(InputError);
    expect(() => readPngText(bytes, "upload.png")).toThrow(
      /upload\.png: text chunks inflate past 16777216 bytes in all/,
    );
    // Two of them fit.
    expect(readPngText(withChunks(png, bombs.slice(0, 2))).map((t) => t.text.length)).toEqual([
      6 * 2 ** 20,
      6 * 2 ** 20,
    ]);
  });

  it("stripPngText drops every text chunk without inflating it and keeps all other chunks byte for byte", async () => {
    const broken = rawChunk(
      "zTXt",
      Buffer.concat([Buffer.from("k\0\0", "latin1"), Buffer.from([0x78, 0x9c, 0xff, 0xff])]),
    );
    const withText = withChunks(writePngText(png, { parameters: "a cat", Title: "夕暮れ" }), [broken]);
    expect(chunkTypes(withText)).toEqual(["IHDR", "zTXt", "pHYs", "tEXt", "iTXt", "IDAT", "IEND"]);
    const stripped = stripPngText(withText);
    expect(Buffer.from(stripped).equals(png)).toBe(true);
    expect(stripPngText(png)).toBe(png); // nothing to drop: the same bytes, not a copy
    expect(() => stripPngText(png.subarray(0, png.length - 20))).toThrow(/truncated/);
  });
});
