import * as zlib from "node:zlib";
import { InputError } from "../errors.js";

/** One textual chunk as stored in a PNG. */
export interface PngText {
  readonly keyword: string;
  readonly text: string;
  readonly chunk: "tEXt" | "zTXt" | "iTXt";
  /** True when the text was stored deflated (zTXt always; iTXt with its compression flag set). */
  readonly compressed: boolean;
  /** iTXt only: RFC 3066 language tag and the keyword translated into that language (often both empty). */
  readonly languageTag?: string;
  readonly translatedKeyword?: string;
}

export interface WritePngTextOptions {
  /** Deflate the text (zTXt, or compressed iTXt for non-Latin-1 text). Off by default, as A1111 writes it. */
  readonly compress?: boolean;
  /** How to call the PNG in error messages. */
  readonly name?: string;
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/**
 * Metadata is small; text inflating past this, in all chunks together, is a decompression bomb, not a prompt. A
 * per-chunk bound alone would let a 30 MB upload of 2,000 chunks of 15 KB inflate to 30 GB.
 */
const MAX_INFLATED_TEXT = 16 * 1024 * 1024;

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= SIGNATURE.length && SIGNATURE.every((b, i) => bytes[i] === b);
}

/**
 * Every tEXt, zTXt and iTXt chunk of a PNG, in file order. Text chunks whose CRC does not match are skipped,
 * as libpng does with damaged ancillary chunks: the image is still usable, the text is not trustworthy.
 */
export function readPngText(png: Uint8Array, name = "the PNG"): PngText[] {
  const out: PngText[] = [];
  const budget = { left: MAX_INFLATED_TEXT };
  for (const c of chunks(png, name)) {
    if (!isTextChunk(c.type)) continue;
    if (!crcMatches(png, c)) continue;
    const parsed = parseTextChunk(c.type, png.subarray(c.dataStart, c.dataEnd), name, budget);
    if (parsed) out.push(parsed);
  }
  return out;
}

/**
 * `png` without its tEXt, zTXt and iTXt chunks, which are dropped unread: for decoding, which never needs them,
 * because libvips inflates every compressed one while reading the header (a few KB of zTXt can cost seconds
 * and gigabytes). Returns `png` itself when it has none.
 */
export function stripPngText(png: Uint8Array, name = "the PNG"): Uint8Array {
  const kept: Uint8Array[] = [png.subarray(0, SIGNATURE.length)];
  let dropped = false;
  for (const c of chunks(png, name)) {
    if (isTextChunk(c.type)) dropped = true;
    else kept.push(png.subarray(c.start, c.dataEnd + 4));
  }
  return dropped ? Buffer.concat(kept) : png;
}

function isTextChunk(type: string): type is "tEXt" | "zTXt" | "iTXt" {
  return type === "tEXt" || type === "zTXt" || type === "iTXt";
}

/** The text of the first chunk with this keyword (A1111 keeps its generation parameters under "parameters"). */
export function getPngText(png: Uint8Array, keyword: string, name?: string): string | undefined {
  return readPngText(png, name).find((t) => t.keyword === keyword)?.text;
}

/**
 * Returns a copy of `png` carrying the given text entries. Each is stored as tEXt when keyword and text are
 * Latin-1, otherwise as iTXt with UTF-8 text: the same choice A1111 (through PIL) makes for "parameters", so
 * readers that only know tEXt still see ASCII prompts. Existing text chunks with the same keywords are
 * removed so a key has one value. New chunks go right before the first IDAT, where streaming readers that
 * stop at the image data still find them.
 */
export function writePngText(
  png: Uint8Array,
  entries: Readonly<Record<string, string>> | ReadonlyArray<{ readonly keyword: string; readonly text: string }>,
  options: WritePngTextOptions = {},
): Buffer {
  const name = options.name ?? "the PNG";
  const list = Array.isArray(entries)
    ? (entries as ReadonlyArray<{ keyword: string; text: string }>)
    : Object.entries(entries).map(([keyword, text]) => ({ keyword, text }));
  const replaced = new Set(list.map((e) => e.keyword));
  const encoded = list.map((e) => encodeTextChunk(e.keyword, e.text, options.compress ?? false));

  const parts: Uint8Array[] = [png.subarray(0, SIGNATURE.length)];
  let inserted = false;
  for (const c of chunks(png, name)) {
    if ((c.type === "IDAT" || c.type === "IEND") && !inserted) {
      parts.push(...encoded);
      inserted = true;
    }
    if (isTextChunk(c.type) && replaced.has(keywordOf(png, c))) continue;
    parts.push(png.subarray(c.start, c.dataEnd + 4));
  }
  return Buffer.concat(parts);
}

/** CRC-32 as PNG (and zlib) define it. Node >= 20.15 has it built in; older Node 20 releases use the table. */
export function crc32(bytes: Uint8Array): number {
  const builtin = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
  return typeof builtin === "function" ? builtin(bytes) >>> 0 : crc32Table(bytes);
}

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** The portable fallback behind crc32, exported so a test can hold it against zlib's. */
export function crc32Table(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Chunk {
  readonly type: string;
  /** Offset of the length field. */
  readonly start: number;
  readonly dataStart: number;
  readonly dataEnd: number;
}

/** Walks the chunk list up to and including IEND, refusing anything that is not a whole PNG. */
function* chunks(png: Uint8Array, name: string): Generator<Chunk> {
  if (!isPng(png)) {
    throw new InputError(
      `${name} is not a PNG file (it lacks the PNG signature); text chunks can only be read from or written to PNG images`,
    );
  }
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let pos = SIGNATURE.length;
  while (true) {
    if (pos + 12 > png.length) throw truncated(name);
    const length = view.getUint32(pos);
    const type = String.fromCharCode(png[pos + 4]!, png[pos + 5]!, png[pos + 6]!, png[pos + 7]!);
    const dataStart = pos + 8;
    const dataEnd = dataStart + length;
    if (length > 0x7fffffff || dataEnd + 4 > png.length) throw truncated(name);
    yield { type, start: pos, dataStart, dataEnd };
    if (type === "IEND") return;
    pos = dataEnd + 4;
  }
}

/** Checked only for the chunks we read: hashing every IDAT of a large image would be wasted work. */
function crcMatches(png: Uint8Array, c: Chunk): boolean {
  const stored = new DataView(png.buffer, png.byteOffset, png.byteLength).getUint32(c.dataEnd);
  return crc32(png.subarray(c.start + 4, c.dataEnd)) === stored;
}

function truncated(name: string): InputError {
  return new InputError(
    `${name} is a truncated or corrupt PNG (a chunk runs past the end of the file); re-export or re-download it`,
  );
}

function keywordOf(png: Uint8Array, c: Chunk): string {
  const data = png.subarray(c.dataStart, c.dataEnd);
  const nul = data.indexOf(0);
  return latin1(nul < 0 ? data : data.subarray(0, nul));
}

function latin1(bytes: Uint8Array): string {
  // Buffer's "latin1" is true ISO-8859-1; TextDecoder("latin1") would be windows-1252.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

function utf8(bytes: Uint8Array): string {
  return new TextDecoder("utf-8").decode(bytes);
}

/** What is left of MAX_INFLATED_TEXT for the rest of one PNG's chunks. */
interface InflateBudget {
  left: number;
}

function inflate(bytes: Uint8Array, name: string, keyword: string, budget: InflateBudget): Uint8Array | undefined {
  let out: Buffer;
  try {
    // maxOutputLength stops zlib as soon as the output passes it, so a bomb costs at most the budget.
    out = zlib.inflateSync(bytes, { maxOutputLength: Math.max(1, budget.left) });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      throw new InputError(
        `${name}: text chunks inflate past ${MAX_INFLATED_TEXT} bytes in all (at "${keyword}"); refusing them as a decompression bomb`,
      );
    }
    return undefined; // a damaged compressed chunk is dropped like one with a bad CRC
  }
  budget.left -= out.length;
  return out;
}

/** Returns undefined for chunks too malformed to hold text (missing separators, bad compression). */
function parseTextChunk(
  type: "tEXt" | "zTXt" | "iTXt",
  data: Uint8Array,
  name: string,
  budget: InflateBudget,
): PngText | undefined {
  const nul = data.indexOf(0);
  if (nul < 1) return undefined;
  const keyword = latin1(data.subarray(0, nul));
  const rest = data.subarray(nul + 1);
  if (type === "tEXt") return { keyword, text: latin1(rest), chunk: type, compressed: false };
  if (type === "zTXt") {
    if (rest.length < 1 || rest[0] !== 0) return undefined; // 0 = deflate, the only method defined
    const inflated = inflate(rest.subarray(1), name, keyword, budget);
    return inflated && { keyword, text: latin1(inflated), chunk: type, compressed: true };
  }
  if (rest.length < 2) return undefined;
  const compressed = rest[0] === 1;
  if (compressed && rest[1] !== 0) return undefined;
  const afterFlags = rest.subarray(2);
  const langEnd = afterFlags.indexOf(0);
  if (langEnd < 0) return undefined;
  const afterLang = afterFlags.subarray(langEnd + 1);
  const transEnd = afterLang.indexOf(0);
  if (transEnd < 0) return undefined;
  const body = afterLang.subarray(transEnd + 1);
  const textBytes = compressed ? inflate(body, name, keyword, budget) : body;
  if (!textBytes) return undefined;
  return {
    keyword,
    text: utf8(textBytes),
    chunk: type,
    compressed,
    languageTag: latin1(afterFlags.subarray(0, langEnd)),
    translatedKeyword: utf8(afterLang.subarray(0, transEnd)),
  };
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

/** The PNG spec's keyword rules: 1-79 printable Latin-1 characters, no leading, trailing or double spaces. */
function checkKeyword(keyword: string): void {
  const printable = [...keyword].every((ch) => {
    const c = ch.charCodeAt(0);
    return ch.length === 1 && ((c >= 0x20 && c <= 0x7e) || (c >= 0xa1 && c <= 0xff));
  });
  if (keyword.length < 1 || keyword.length > 79 || !printable || /^ | $| {2}/.test(keyword)) {
    throw new InputError(
      `PNG text keyword ${JSON.stringify(keyword)} is not allowed: use 1 to 79 printable Latin-1 characters without leading, trailing or double spaces (e.g. "parameters")`,
    );
  }
}

function encodeTextChunk(keyword: string, text: string, compress: boolean): Uint8Array {
  checkKeyword(keyword);
  if (text.includes("\0")) {
    throw new InputError(
      `PNG text "${keyword}" contains a NUL character, which PNG text chunks cannot hold; remove it`,
    );
  }
  const key = Buffer.from(keyword, "latin1");
  if (isLatin1(text)) {
    const body = Buffer.from(text, "latin1");
    return compress
      ? chunk("zTXt", key, Uint8Array.of(0, 0), zlib.deflateSync(body))
      : chunk("tEXt", key, Uint8Array.of(0), body);
  }
  const body = Buffer.from(text, "utf8");
  // keyword NUL, compression flag, method 0, empty language tag NUL, empty translated keyword NUL, text
  return chunk("iTXt", key, Uint8Array.of(0, compress ? 1 : 0, 0, 0, 0), compress ? zlib.deflateSync(body) : body);
}

function chunk(type: string, ...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = Buffer.alloc(12 + length);
  out.writeUInt32BE(length, 0);
  out.write(type, 4, "latin1");
  let pos = 8;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  out.writeUInt32BE(crc32(out.subarray(4, 8 + length)), 8 + length);
  return out;
}
