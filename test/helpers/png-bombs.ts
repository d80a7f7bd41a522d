import { deflateSync } from "node:zlib";
import { crc32 } from "../../src/image/png-text.js";

/**
 * Small PNG files that cost a decoder far more than their size: the decompression bombs the image paths must
 * refuse or defuse. Built by hand (signature, chunks, CRCs), because no encoder writes such files on purpose.
 */

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * A valid, solid black PNG of any declared size, a few tens of KB even at 16383x16383: 1-bit greyscale rows of
 * zeros deflate about a thousandfold. Decoded to RGB it is width * height * 3 bytes (805 MB at 16383x16383).
 */
export function solidPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = Buffer.alloc((1 + Math.ceil(width / 8)) * height); // filter byte 0 + packed zero pixels per row
  return Buffer.concat([
    SIGNATURE,
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(rows, { level: 9 })),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

/** `png` with `chunks` inserted right after IHDR (where decoders read ancillary chunks before the pixels). */
export function withChunks(png: Uint8Array, chunks: readonly Uint8Array[]): Buffer {
  const afterIhdr = 8 + 12 + 13;
  return Buffer.concat([png.subarray(0, afterIhdr), ...chunks, png.subarray(afterIhdr)]);
}

/** `count` zTXt chunks that each inflate to `inflatedBytes` of "A" (about a thousandfold: 15 MB from 15 KB). */
export function zTxtBombs(count: number, inflatedBytes: number): Buffer[] {
  const deflated = deflateSync(Buffer.alloc(inflatedBytes, 0x41), { level: 9 });
  return Array.from({ length: count }, (_, i) =>
    pngChunk("zTXt", Buffer.concat([Buffer.from(`bomb${i}\0\0`, "latin1"), deflated])),
  );
}
