/**
 * The EXIF UserComment, where AUTOMATIC1111 keeps the generation parameters of JPEG and WebP images (PNG has
 * text chunks instead). A1111 writes it through piexif: a big-endian TIFF block holding an Exif IFD with one
 * UserComment, whose value is the 8-byte character code "UNICODE\0" then the text in UTF-16BE; its reader
 * (png-info, civitai and others) looks there. sharp cannot write it: libvips stores the tag as ASCII and turns
 * every non-ASCII character of a prompt into "?", so the block is built here.
 */

const EXIF_IFD_POINTER = 0x8769;
const EXIF_VERSION = 0x9000;
const USER_COMMENT = 0x9286;
const TYPE_LONG = 4;
const TYPE_UNDEFINED = 7;

const UNICODE = "UNICODE\0";
const ASCII = "ASCII\0\0\0";
const JIS = "JIS\0\0\0\0\0";
const UNDEFINED_CODE = "\0\0\0\0\0\0\0\0";

/** "Exif\0\0": what precedes the TIFF block in a JPEG APP1 segment (and in sharp's `metadata().exif`). */
export const EXIF_HEADER = Buffer.from("Exif\0\0", "latin1");

/** A TIFF/EXIF block (no "Exif\0\0" header) whose only content is `text` as a UNICODE UserComment. */
export function exifWithUserComment(text: string): Buffer {
  const comment = Buffer.concat([Buffer.from(UNICODE, "latin1"), Buffer.from(text, "utf16le").swap16()]);
  const ifd0 = 8;
  const exifIfd = ifd0 + ifdSize(1);
  const commentAt = exifIfd + ifdSize(2);
  const out = Buffer.alloc(commentAt + comment.length);
  out.write("MM", 0, "latin1");
  out.writeUInt16BE(42, 2);
  out.writeUInt32BE(ifd0, 4);
  writeIfd(out, ifd0, [[EXIF_IFD_POINTER, TYPE_LONG, 1, exifIfd]]);
  // ExifVersion is mandatory in an Exif IFD; "0232" is the version whose UserComment rules this follows.
  writeIfd(out, exifIfd, [
    [EXIF_VERSION, TYPE_UNDEFINED, 4, Buffer.from("0232", "latin1").readUInt32BE(0)],
    [USER_COMMENT, TYPE_UNDEFINED, comment.length, commentAt],
  ]);
  comment.copy(out, commentAt);
  return out;
}

/**
 * The UserComment of an EXIF block (with or without its "Exif\0\0" header), decoded by its character code;
 * undefined when there is none or the block is damaged. Only IFD0 and the Exif IFD it points to are read, with
 * every offset bounds-checked, so foreign or hostile blocks cost nothing and cannot loop.
 */
export function readUserComment(block: Uint8Array): string | undefined {
  let tiff = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  if (tiff.subarray(0, EXIF_HEADER.length).equals(EXIF_HEADER)) tiff = tiff.subarray(EXIF_HEADER.length);
  if (tiff.length < 8) return undefined;
  const order = tiff.toString("latin1", 0, 2);
  if (order !== "MM" && order !== "II") return undefined;
  const big = order === "MM";
  const u16 = (at: number) => (big ? tiff.readUInt16BE(at) : tiff.readUInt16LE(at));
  const u32 = (at: number) => (big ? tiff.readUInt32BE(at) : tiff.readUInt32LE(at));
  if (u16(2) !== 42) return undefined;

  /** The byte range of a tag's value in an IFD, or undefined. */
  const find = (ifd: number, tag: number): { at: number; count: number } | undefined => {
    if (ifd + 2 > tiff.length) return undefined;
    const entries = u16(ifd);
    for (let i = 0; i < entries; i++) {
      const e = ifd + 2 + i * 12;
      if (e + 12 > tiff.length) return undefined;
      if (u16(e) !== tag) continue;
      const size = TYPE_SIZES[u16(e + 2)];
      const count = u32(e + 4);
      if (size === undefined) return undefined;
      const bytes = size * count;
      const at = bytes <= 4 ? e + 8 : u32(e + 8);
      return at + bytes <= tiff.length ? { at, count: bytes } : undefined;
    }
    return undefined;
  };

  const pointer = find(u32(4), EXIF_IFD_POINTER);
  if (pointer?.count !== 4) return undefined;
  const value = find(u32(pointer.at), USER_COMMENT);
  if (!value) return undefined;
  return decodeComment(tiff.subarray(value.at, value.at + value.count), big);
}

/** Bytes per value of each TIFF field type. */
const TYPE_SIZES: Readonly<Record<number, number>> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
};

function ifdSize(entries: number): number {
  return 2 + entries * 12 + 4;
}

/** Entries as [tag, type, count, value or offset]; they must come sorted by tag, as TIFF requires. */
function writeIfd(out: Buffer, at: number, entries: readonly [number, number, number, number][]): void {
  out.writeUInt16BE(entries.length, at);
  entries.forEach(([tag, type, count, value], i) => {
    const e = at + 2 + i * 12;
    out.writeUInt16BE(tag, e);
    out.writeUInt16BE(type, e + 2);
    out.writeUInt32BE(count, e + 4);
    out.writeUInt32BE(value, e + 8);
  });
  out.writeUInt32BE(0, at + 2 + entries.length * 12);
}

function decodeComment(value: Buffer, bigEndianTiff: boolean): string | undefined {
  if (value.length < 8) return undefined;
  const code = value.toString("latin1", 0, 8);
  const body = value.subarray(8);
  let text: string;
  if (code === UNICODE) {
    text = utf16(body, bigEndianTiff);
  } else if (code === JIS) {
    text = new TextDecoder("shift_jis").decode(body);
  } else if (code === ASCII || code === UNDEFINED_CODE) {
    // ASCII by the standard; UTF-8 is its superset and what careless writers put there.
    text = body.toString("utf8");
  } else {
    // No character code: A1111's reader falls back to the raw bytes as UTF-8 too.
    text = value.toString("utf8");
  }
  text = text.replace(/\0+$/, "");
  return text === "" ? undefined : text;
}

/**
 * UTF-16 in either byte order. The standard does not say which: piexif (A1111) writes big-endian, ExifTool
 * follows the TIFF's byte order. A byte-order mark decides; otherwise the zero high bytes of Latin text do,
 * and failing both (a prompt in CJK alone), the TIFF's byte order.
 */
function utf16(body: Buffer, bigEndianTiff: boolean): string {
  let bytes = body.subarray(0, body.length - (body.length % 2));
  let big = bigEndianTiff;
  if (bytes.length >= 2 && ((bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe))) {
    big = bytes[0] === 0xfe;
    bytes = bytes.subarray(2);
  } else {
    let zeroEven = 0,
      zeroOdd = 0;
    for (let i = 0; i < bytes.length; i += 2) {
      if (bytes[i] === 0) zeroEven++;
      if (bytes[i + 1] === 0) zeroOdd++;
    }
    if (zeroEven !== zeroOdd) big = zeroEven > zeroOdd;
  }
  const copy = Buffer.from(bytes);
  if (big) copy.swap16();
  return copy.toString("utf16le");
}
