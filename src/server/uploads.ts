import { InputError } from "../errors.js";
import { decodeImage, inputPixelLimit, screenImage } from "../image/codec.js";
import { MAX_SIDE } from "./api-types.js";
import { HttpError } from "./http-errors.js";
import type { Uploads } from "./store.js";

/**
 * Uploads are resized to the generation size, at most MAX_SIDE (2048) a side, so they may declare up to twice that
 * in each dimension: 4096x4096, 16.8 MP, decoded in about 0.2 s and 50 MB. A phone's 24 or 48 MP photo is refused
 * with a message asking to scale it down, which costs the client nothing it would have kept.
 */
const MAX_UPLOAD_PIXELS = inputPixelLimit(MAX_SIDE);

const DATA_URL = /^data:([a-z]+\/[a-z0-9+.-]+)?(;[a-z-]+=[^;,]*)*;base64,/i;

/**
 * Bytes of an uploaded image: base64, bare or as a data URL (what a canvas's toDataURL gives and what A1111
 * clients send). URL-safe base64 and line breaks are tolerated; anything else is a 400 naming the field.
 */
export function decodeBase64Image(value: string, field: string): Uint8Array {
  const body = value.trim().replace(DATA_URL, "").replace(/\s+/g, "");
  if (body.length === 0 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(body)) {
    throw new HttpError(
      400,
      "invalid_request",
      `${field}: not base64 image data; send a PNG or JPEG as base64 or as a data URL (data:image/png;base64,...)`,
      field,
    );
  }
  const bytes = Buffer.from(body, body.includes("-") || body.includes("_") ? "base64url" : "base64");
  if (!looksLikeImage(bytes)) {
    throw new HttpError(
      400,
      "invalid_request",
      `${field}: the data is not a PNG, JPEG or WebP image; export the image as PNG and send that`,
      field,
    );
  }
  return bytes;
}

/**
 * An uploaded image (base64 as above), screened before anything decodes it: refused by the size its header
 * declares, and a PNG's text chunks dropped (see screenImage). What the server keeps and decodes later, including
 * the A1111 mask preparation, is these bytes.
 */
export async function readImageUpload(value: string, field: string): Promise<Uint8Array> {
  const bytes = decodeBase64Image(value, field);
  return (await or400(field, () => screenImage(bytes, { name: `the uploaded ${field}`, maxPixels: MAX_UPLOAD_PIXELS })))
    .bytes;
}

function looksLikeImage(b: Uint8Array): boolean {
  const png = b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
  const jpeg = b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
  const webp =
    b.length >= 12 &&
    String.fromCharCode(...b.subarray(0, 4)) === "RIFF" &&
    String.fromCharCode(...b.subarray(8, 12)) === "WEBP";
  return png || jpeg || webp;
}

/**
 * Decodes the uploads once at acceptance, so a corrupt file or a mask without an init image is a 400 now rather
 * than a failed job later.
 */
export async function checkUploads(
  uploads: Uploads,
  fields: { initImage: string; mask: string; controlImage?: (i: number) => string },
): Promise<void> {
  for (const [i, image] of (uploads.controlImages ?? []).entries())
    await decodeOr400(image, fields.controlImage?.(i) ?? `controlnet.${i}.image`);
  const init = uploads.initImage && (await decodeOr400(uploads.initImage, fields.initImage));
  const mask = uploads.mask && (await decodeOr400(uploads.mask, fields.mask));
  if (mask && !init)
    throw new HttpError(
      400,
      "invalid_request",
      `${fields.mask}: a mask needs an init image to inpaint (${fields.initImage})`,
      fields.mask,
    );
  // A mask of another size is stretched to the init image when the job runs, as A1111 does.
}

async function decodeOr400(bytes: Uint8Array, field: string): Promise<{ width: number; height: number }> {
  const img = await or400(field, () =>
    decodeImage(bytes, { name: `the uploaded ${field}`, maxPixels: MAX_UPLOAD_PIXELS }),
  );
  return { width: img.width, height: img.height };
}

async function or400<T>(field: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof InputError) throw new HttpError(400, "invalid_request", `${field}: ${e.message}`, field);
    throw e;
  }
}
