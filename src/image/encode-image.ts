import sharp from "sharp";
import { encodePng, rawInput, type RgbImage } from "./codec.js";
import { exifWithUserComment } from "./exif-user-comment.js";
import { insertJpegExif } from "./jpeg-exif.js";
import type { ImageFormat } from "./output-format.js";
import { writePngText } from "./png-text.js";
import { insertWebpExif } from "./webp-exif.js";

/** AUTOMATIC1111's default `jpeg_quality`, which it also uses for (lossy) WebP. */
export const LOSSY_QUALITY = 80;

/**
 * Encodes an image in the given format with its generation parameters (A1111's infotext) where A1111 keeps
 * them: the "parameters" text chunk of a PNG, the EXIF UserComment of a JPEG or WebP. Provenance signing, if
 * any, comes after this: it must see the final bytes.
 */
export async function encodeImage(image: RgbImage, format: ImageFormat, parameters?: string): Promise<Buffer> {
  if (format === "png") {
    const png = await encodePng(image);
    return parameters === undefined ? png : writePngText(png, [{ keyword: "parameters", text: parameters }]);
  }
  const pixels = sharp(rawInput(image), { raw: { width: image.width, height: image.height, channels: 3 } });
  if (format === "jpeg") {
    const jpeg = await pixels.jpeg({ quality: LOSSY_QUALITY }).toBuffer();
    return parameters === undefined ? jpeg : insertJpegExif(jpeg, exifWithUserComment(parameters));
  }
  const webp = await pixels.webp({ quality: LOSSY_QUALITY }).toBuffer();
  return parameters === undefined ? webp : insertWebpExif(webp, exifWithUserComment(parameters), image.width, image.height);
}
