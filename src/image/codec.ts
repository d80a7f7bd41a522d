import { stat } from "node:fs/promises";
import sharp, { type OutputInfo, type Sharp } from "sharp";
import { InputError, InternalError } from "../errors.js";

/** 8-bit sRGB pixels, row-major, 3 interleaved channels (HWC): what the tensor and PNG helpers exchange. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** width * height * 3 bytes. */
  readonly data: Uint8Array;
}

/** One value per pixel in [0, 1], row-major; 1 means "repaint this pixel", 0 "keep it". */
export interface Mask {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
}

/** A path on disk, or the encoded bytes of a file (an upload, a data URL already decoded). */
export type ImageSource = string | Uint8Array;

export interface DecodeOptions {
  /** How to call a byte source in error messages ("the uploaded init image"); paths name themselves. */
  readonly name?: string;
  /** Stretch to exactly this size after decoding (AUTOMATIC1111's "just resize"); both or neither. */
  readonly width?: number;
  readonly height?: number;
}

/**
 * Formats this sharp build can read, for error messages. Read from sharp rather than written down so the
 * message stays true when sharp is built with more or fewer decoders. "vips" (sharp's own format) and "raw"
 * (headerless pixels, which need their size given separately) are not files a user would pass.
 */
export function acceptedFormats(): string {
  return Object.entries(sharp.format)
    .filter(([id, f]) => id !== "vips" && id !== "raw" && (f.input.file || f.input.buffer))
    .map(([id]) => FORMAT_NAMES[id] ?? id.toUpperCase())
    .join(", ");
}

const FORMAT_NAMES: Readonly<Record<string, string>> = { webp: "WebP", heif: "HEIF/AVIF", jp2k: "JPEG 2000" };

/**
 * Decodes any image sharp reads to RGB. EXIF orientation is applied (phone photos come out upright, as an
 * image viewer shows them) and transparency is flattened onto white, because a sketch drawn on a transparent
 * canvas means "paper" where nothing was drawn.
 */
export async function decodeImage(source: ImageSource, options: DecodeOptions = {}): Promise<RgbImage> {
  const size = requestedSize(options);
  const pipeline = (await open(source, options.name)).flatten({ background: "#ffffff" }).toColourspace("srgb");
  if (size) pipeline.resize(size.width, size.height, { fit: "fill" });
  const { data, info } = await run(pipeline, source, options.name);
  if (info.channels !== 3) {
    throw new InternalError(`${describe(source, options.name)}: sharp returned ${info.channels} channels after conversion to sRGB, expected 3`);
  }
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/**
 * Decodes an inpainting mask: white = repaint, black = keep, grey in between. Transparency is flattened onto
 * black, so a brush layer exported with an empty (transparent) background keeps everything it did not paint.
 * Colour masks are reduced to their luminance.
 */
export async function decodeMask(source: ImageSource, options: DecodeOptions = {}): Promise<Mask> {
  const size = requestedSize(options);
  const pipeline = (await open(source, options.name)).flatten({ background: "#000000" }).toColourspace("b-w");
  if (size) pipeline.resize(size.width, size.height, { fit: "fill" });
  const { data, info } = await run(pipeline, source, options.name);
  const out = new Float32Array(info.width * info.height);
  const stride = info.channels;
  for (let i = 0; i < out.length; i++) out[i] = data[i * stride]! / 255;
  return { width: info.width, height: info.height, data: out };
}

/**
 * Stretches an image to exactly width x height, ignoring the aspect ratio: AUTOMATIC1111's default
 * "just resize" for init images. Lanczos3 (sharp's default kernel) is the filter A1111 uses for it.
 */
export async function resizeImage(image: RgbImage, width: number, height: number): Promise<RgbImage> {
  checkSize(width, height);
  if (image.width === width && image.height === height) return image;
  const { data, info } = await sharp(rawInput(image), { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: "fill" })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Encodes RGB pixels as an 8-bit PNG (no metadata; png-text.ts adds text chunks afterwards). */
export async function encodePng(image: RgbImage): Promise<Buffer> {
  return sharp(rawInput(image), { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}

export function rawInput(image: RgbImage): Buffer {
  const expected = image.width * image.height * 3;
  if (!Number.isInteger(image.width) || !Number.isInteger(image.height) || image.width < 1 || image.height < 1 || image.data.length !== expected) {
    throw new InternalError(`RGB image of ${image.width}x${image.height} has ${image.data.length} bytes, expected ${expected}`);
  }
  return Buffer.from(image.data.buffer, image.data.byteOffset, image.data.length);
}

function requestedSize(options: DecodeOptions): { width: number; height: number } | undefined {
  const { width, height } = options;
  if (width === undefined && height === undefined) return undefined;
  if (width === undefined || height === undefined) {
    throw new InputError(`resizing needs both a width and a height (got width ${width}, height ${height})`);
  }
  checkSize(width, height);
  return { width, height };
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InputError(`image size ${width}x${height} is not valid: width and height must be positive whole numbers of pixels`);
  }
}

function describe(source: ImageSource, name: string | undefined): string {
  return name ?? (typeof source === "string" ? source : "the image data");
}

/** Opens the source, turning "no such file" into a message that says so rather than sharp's wording. */
async function open(source: ImageSource, name: string | undefined): Promise<Sharp> {
  if (typeof source === "string") {
    let isFile: boolean;
    try {
      isFile = (await stat(source)).isFile();
    } catch {
      throw new InputError(`${describe(source, name)}: file not found; check the path (images accepted: ${acceptedFormats()})`);
    }
    if (!isFile) throw new InputError(`${describe(source, name)} is not a file; pass the path of an image (${acceptedFormats()})`);
  } else if (source.length === 0) {
    throw new InputError(`${describe(source, name)} is empty; send the bytes of an image (${acceptedFormats()})`);
  }
  // Animated GIF/WebP decode their first frame only, which is what an init image can use.
  return sharp(source, { autoOrient: true });
}

/** Decoding happens lazily inside toBuffer, so this is where unreadable content surfaces. */
async function run(pipeline: Sharp, source: ImageSource, name: string | undefined): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    return await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new InputError(
      `${describe(source, name)} could not be read as an image (${(e as Error).message}); ` +
        `use one of the formats accepted: ${acceptedFormats()}`,
    );
  }
}
