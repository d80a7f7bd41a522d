import { InternalError } from "../errors.js";

/** VP8X feature flags (WebP container specification). */
const EXIF_FLAG = 0x08;
/** Chunks that hold the image itself; the EXIF chunk follows them. */
const IMAGE_CHUNKS = new Set(["VP8 ", "VP8L", "ALPH", "ANMF"]);

interface Chunk {
  readonly fourcc: string;
  /** The whole chunk: header, payload and padding byte. */
  readonly bytes: Buffer;
}

/**
 * Returns `webp` with `tiff` (an EXIF block, which WebP stores without JPEG's "Exif\0\0" header) in an EXIF
 * chunk. Metadata needs the extended format: a simple file (one VP8 or VP8L chunk) gets a VP8X header with
 * the canvas size given, an extended one has its EXIF flag set. The EXIF chunk goes after the image data,
 * the position the specification gives it; an old one is replaced.
 */
export function insertWebpExif(webp: Uint8Array, tiff: Uint8Array, width: number, height: number): Buffer {
  const chunks = readChunks(Buffer.from(webp.buffer, webp.byteOffset, webp.byteLength));
  const kept = chunks.filter((c) => c.fourcc !== "EXIF");
  const vp8x = kept.findIndex((c) => c.fourcc === "VP8X");
  if (vp8x >= 0) {
    const flagged = Buffer.from(kept[vp8x]!.bytes);
    flagged[8] = flagged[8]! | EXIF_FLAG;
    kept[vp8x] = { fourcc: "VP8X", bytes: flagged };
  } else {
    const payload = Buffer.alloc(10);
    payload[0] = EXIF_FLAG;
    payload.writeUIntLE(width - 1, 4, 3);
    payload.writeUIntLE(height - 1, 7, 3);
    kept.unshift({ fourcc: "VP8X", bytes: chunk("VP8X", payload) });
  }
  let lastImage = -1;
  kept.forEach((c, i) => {
    if (IMAGE_CHUNKS.has(c.fourcc)) lastImage = i;
  });
  if (lastImage < 0) throw new InternalError("the encoder returned a WebP without image data");
  kept.splice(lastImage + 1, 0, { fourcc: "EXIF", bytes: chunk("EXIF", tiff) });
  const body = Buffer.concat(kept.map((c) => c.bytes));
  const header = Buffer.alloc(12);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(4 + body.length, 4);
  header.write("WEBP", 8, "latin1");
  return Buffer.concat([header, body]);
}

function chunk(fourcc: string, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + payload.length + (payload.length % 2));
  out.write(fourcc, 0, "latin1");
  out.writeUInt32LE(payload.length, 4);
  out.set(payload, 8);
  return out;
}

function readChunks(webp: Buffer): Chunk[] {
  if (webp.length < 12 || webp.toString("latin1", 0, 4) !== "RIFF" || webp.toString("latin1", 8, 12) !== "WEBP") {
    throw new InternalError("the encoder returned something that is not a WebP file");
  }
  const end = Math.min(webp.length, 8 + webp.readUInt32LE(4));
  const out: Chunk[] = [];
  for (let pos = 12; pos + 8 <= end; ) {
    const size = webp.readUInt32LE(pos + 4);
    const next = pos + 8 + size + (size % 2);
    if (next > end) throw new InternalError("the encoder returned a truncated WebP file");
    out.push({ fourcc: webp.toString("latin1", pos, pos + 4), bytes: webp.subarray(pos, next) });
    pos = next;
  }
  return out;
}
