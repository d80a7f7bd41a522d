import sharp from "sharp";
import { encodePng, rawInput, type RgbImage } from "./codec.js";
import { exifWithUserComment } from "./exif-user-comment.js";
import { insertJpegExif } from "./jpeg-exif.js";
import type { ImageFormat } from "./output-format.js";
import { writePngText } from "./png-text.js";
import { insertWebpExif } from "./webp-exif.js";

/** AUTOMATIC1111's default `jpeg_quality`. */
export const JPEG_QUALITY = 80;
/**
 * A1111 uses its JPEG quality for WebP too, but WebP at 80 erases the robust watermark from small images
 * (none of 12 tiny-model images at 128 px kept it, while all did at 90, and all JPEGs at 80 did): the
 * watermark is on by default, so WebP gets the quality that keeps it.
 */
export const WEBP_QUALITY = 90;

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
    const jpeg = await pixels.jpeg({ quality: JPEG_QUALITY }).toBuffer();
    return parameters === undefined ? jpeg : insertJpegExif(jpeg, exifWithUserComment(parameters));
  }
  const webp = await pixels.webp({ quality: WEBP_QUALITY }).toBuffer();
  return parameters === undefined
    ? webp
    : insertWebpExif(webp, exifWithUserComment(parameters), image.width, image.height);
}
