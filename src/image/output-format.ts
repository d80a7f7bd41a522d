import { basename, extname } from "node:path";
import { InputError } from "../errors.js";
import { isPng } from "./png-text.js";

/** The formats diffuse writes: those AUTOMATIC1111 offers as `samples_format`. */
export type ImageFormat = "png" | "jpeg" | "webp";

interface FormatInfo {
  /** How to call it in messages. */
  readonly name: string;
  readonly mimeType: string;
  /** File name extensions, lower case, with the dot; the first is the usual one. */
  readonly extensions: readonly string[];
}

export const IMAGE_FORMATS: Readonly<Record<ImageFormat, FormatInfo>> = {
  png: { name: "PNG", mimeType: "image/png", extensions: [".png"] },
  jpeg: { name: "JPEG", mimeType: "image/jpeg", extensions: [".jpg", ".jpeg"] },
  webp: { name: "WebP", mimeType: "image/webp", extensions: [".webp"] },
};

const ALL_EXTENSIONS = Object.values(IMAGE_FORMATS).flatMap((f) => f.extensions);

/**
 * The format a file name's extension names (case-insensitive). Anything else is refused rather than written
 * as PNG under a misleading name, which is what a viewer or an upload form would then trip over.
 */
export function formatForPath(path: string): ImageFormat {
  const ext = extname(basename(path)).toLowerCase();
  for (const [format, info] of Object.entries(IMAGE_FORMATS) as [ImageFormat, FormatInfo][]) {
    if (info.extensions.includes(ext)) return format;
  }
  const what = ext
    ? `has the extension ${JSON.stringify(ext)}, which is not an image format diffuse writes`
    : "has no extension to tell the image format";
  throw new InputError(`${path} ${what}: end the name with ${ALL_EXTENSIONS.join(", ")}`);
}

/** The format of encoded bytes, by their signature; undefined for anything diffuse does not write. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  const ascii = (start: number, end: number) => Buffer.from(bytes.subarray(start, end)).toString("latin1");
  if (isPng(bytes)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  return undefined;
}

/** "PNG, JPEG or WebP", for messages about files diffuse reads back. */
export function formatNames(): string {
  const names = Object.values(IMAGE_FORMATS).map((f) => f.name);
  return `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}
