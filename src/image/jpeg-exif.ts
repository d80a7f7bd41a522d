import { InputError, InternalError } from "../errors.js";
import { EXIF_HEADER } from "./exif-user-comment.js";

const SOI = 0xd8;
const APP0 = 0xe0;
const APP1 = 0xe1;
/** A segment's length field counts itself: 65535 at most, so 65533 bytes of content. */
const MAX_SEGMENT_CONTENT = 0xffff - 2;

/** Whether an EXIF block of this many bytes (without header) fits in a JPEG, for checks before any work. */
export function fitsJpegExif(tiffLength: number): boolean {
  return EXIF_HEADER.length + tiffLength <= MAX_SEGMENT_CONTENT;
}

/**
 * Returns `jpeg` with `tiff` (an EXIF block without its header) as its APP1 "Exif" segment: right after the
 * SOI marker and any APP0 (JFIF) segment, where EXIF readers look for it. An existing Exif segment is
 * replaced, so the file has one. Throws an InputError when the block does not fit in one segment (64 KB),
 * which is a limit of the format: A1111 fails there too.
 */
export function insertJpegExif(jpeg: Uint8Array, tiff: Uint8Array): Buffer {
  const content = Buffer.concat([EXIF_HEADER, tiff]);
  if (!fitsJpegExif(tiff.length)) {
    throw new InputError(
      `the generation parameters take ${content.length} bytes of EXIF, more than a JPEG's 64 KB metadata segment holds ` +
        "(a very long prompt): write the image as .png or .webp instead",
    );
  }
  const bytes = Buffer.from(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength);
  if (bytes[0] !== 0xff || bytes[1] !== SOI)
    throw new InternalError("the encoder returned something that is not a JPEG (no SOI marker)");
  // The application segments before the tables and frame: leading APP0 (JFIF) ones stay first, the EXIF
  // segment follows them, then the others; an old Exif segment is dropped.
  const lead: Buffer[] = [];
  const rest: Buffer[] = [];
  let pos = 2;
  while (pos + 4 <= bytes.length && bytes[pos] === 0xff && bytes[pos + 1]! >= APP0 && bytes[pos + 1]! <= 0xef) {
    const marker = bytes[pos + 1]!;
    const end = pos + 2 + bytes.readUInt16BE(pos + 2);
    if (end > bytes.length) throw new InternalError("the encoder returned a truncated JPEG");
    const segment = bytes.subarray(pos, end);
    const isExif = marker === APP1 && segment.subarray(4, 4 + EXIF_HEADER.length).equals(EXIF_HEADER);
    if (marker === APP0 && rest.length === 0) lead.push(segment);
    else if (!isExif) rest.push(segment);
    pos = end;
  }
  const header = Buffer.alloc(4);
  header.writeUInt8(0xff, 0);
  header.writeUInt8(APP1, 1);
  header.writeUInt16BE(content.length + 2, 2);
  return Buffer.concat([bytes.subarray(0, 2), ...lead, header, content, ...rest, bytes.subarray(pos)]);
}
