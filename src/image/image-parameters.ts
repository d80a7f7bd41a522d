import sharp from "sharp";
import { InputError } from "../errors.js";
import { readUserComment } from "./exif-user-comment.js";
import { formatNames, sniffFormat, type ImageFormat } from "./output-format.js";
import { readPngText } from "./png-text.js";

export interface ImageParameters {
  readonly format: ImageFormat;
  /** A1111's infotext: the PNG "parameters" chunk, or the EXIF UserComment of a JPEG or WebP. */
  readonly parameters?: string;
  /** The PNG's other text chunks by keyword (ComfyUI's workflow, ...); empty for JPEG and WebP. */
  readonly text: Record<string, string>;
}

/** The generation parameters stored in an image written by diffuse or AUTOMATIC1111, read where each format keeps them. */
export async function readImageParameters(bytes: Uint8Array, name = "the image"): Promise<ImageParameters> {
  const format = sniffFormat(bytes);
  if (format === undefined)
    throw new InputError(
      `${name} is not a ${formatNames()} image, the formats diffuse and AUTOMATIC1111 store parameters in`,
    );
  if (format === "png") {
    const chunks = readPngText(bytes, name);
    const text = Object.fromEntries(chunks.filter((c) => c.keyword !== "parameters").map((c) => [c.keyword, c.text]));
    return { format, parameters: chunks.find((c) => c.keyword === "parameters")?.text, text };
  }
  let exif: Buffer | undefined;
  try {
    // Reads the headers only; the pixels are not decoded.
    exif = (await sharp(bytes).metadata()).exif;
  } catch (e) {
    throw new InputError(
      `${name} is a damaged ${format === "jpeg" ? "JPEG" : "WebP"} file (${(e as Error).message}); re-export or re-download it`,
    );
  }
  return { format, parameters: exif && readUserComment(exif), text: {} };
}
