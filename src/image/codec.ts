import { stat } from "node:fs/promises";
import sharp, { type Metadata, type OutputInfo, type Sharp } from "sharp";
import { InputError, InternalError } from "../errors.js";
import { readRegularFile } from "../regular-file.js";
import { isPng, stripPngText } from "./png-text.js";

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

export interface ScreenOptions {
  /** How to call a byte source in error messages ("the uploaded init image"); paths name themselves. */
  readonly name?: string;
  /** Images declaring more pixels than this are refused before decoding. Default: DEFAULT_MAX_INPUT_PIXELS. */
  readonly maxPixels?: number;
}

export interface DecodeOptions extends ScreenOptions {
  /** Stretch to exactly this size after decoding (AUTOMATIC1111's "just resize"); both or neither. */
  readonly width?: number;
  readonly height?: number;
  /**
   * How the image meets that size: "fill" stretches it (the default); "cover" scales it to cover the size and crops
   * the centre (A1111's "crop and resize"); "inside" scales it to fit within the size, keeping its aspect ratio, so
   * the result may be smaller on one side (A1111's "resize and fill" before its padding).
   */
  readonly fit?: "fill" | "cover" | "inside";
}

/** The largest width or height the project generates (pipeline/params.ts checks requests against it). */
export const MAX_IMAGE_SIDE = 4096;

/**
 * The most pixels an input image may declare when it is used at most `largestSide` wide and high: twice that side
 * in each dimension. An init image or mask is resized to the generation size, so detail beyond that is thrown
 * away, while decoding costs time and 3 bytes per pixel (more in libvips' intermediate images). A pixel count
 * rather than a side, because the cost is per pixel: a long panorama of the same area costs the same.
 */
export function inputPixelLimit(largestSide: number): number {
  return (2 * largestSide) ** 2;
}

/**
 * For callers that name no tighter bound: 8192x8192 (67 MP, decoded here in 0.6 s and 200 MB), which admits photos
 * from any current camera or phone. libvips' own default, 16383x16383 (268 MP), lets a 32 KB PNG through that
 * takes 3 s and 900 MB to decode.
 */
export const DEFAULT_MAX_INPUT_PIXELS = inputPixelLimit(MAX_IMAGE_SIDE);

/** An image checked before decoding: the bytes to decode and the size its header declares. */
export interface ScreenedImage {
  /** The file's bytes (or the given ones), less a PNG's text chunks. */
  readonly bytes: Uint8Array;
  /** As displayed, after EXIF orientation. */
  readonly width: number;
  readonly height: number;
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
  const pipeline = (await open(source, options)).flatten({ background: "#ffffff" }).toColourspace("srgb");
  if (size) pipeline.resize(size.width, size.height, { fit: options.fit ?? "fill" });
  const { data, info } = await run(pipeline, source, options.name);
  if (info.channels !== 3) {
    throw new InternalError(
      `${describe(source, options.name)}: sharp returned ${info.channels} channels after conversion to sRGB, expected 3`,
    );
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
  const pipeline = (await open(source, options)).flatten({ background: "#000000" }).toColourspace("b-w");
  if (size) pipeline.resize(size.width, size.height, { fit: "fill" });
  const { data, info } = await run(pipeline, source, options.name);
  const out = new Float32Array(info.width * info.height);
  const stride = info.channels;
  for (let i = 0; i < out.length; i++) out[i] = data[i * stride]! / 255;
  return { width: info.width, height: info.height, data: out };
}

/**
 * Stretches an image to exactly width x height, ignoring the aspect ratio: AUTOMATIC1111's default
 * "just resize" for init images. Lanczos3 (sharp's default kernel) is the filter A1111 uses for it; "nearest"
 * repeats pixels (A1111's Nearest upscaler).
 */
export async function resizeImage(
  image: RgbImage,
  width: number,
  height: number,
  kernel: "lanczos3" | "nearest" = "lanczos3",
): Promise<RgbImage> {
  checkSize(width, height);
  if (image.width === width && image.height === height) return image;
  const { data, info } = await sharp(rawInput(image), {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .resize(width, height, { fit: "fill", kernel })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/**
 * Raw RGB pixels resampled to outWidth x outHeight with one of libvips' kernels: "lanczos3" (PIL's LANCZOS,
 * which A1111's Lanczos upscaler uses, has the same 3-lobe kernel) or "nearest". Raw bytes in and out, as the
 * hires fix's pixel upscalers pass them.
 */
export async function resamplePixels(
  rgb: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  kernel: "lanczos3" | "nearest",
): Promise<Uint8Array> {
  checkSize(outWidth, outHeight);
  const { data } = await sharp(rawInput({ width, height, data: rgb }), { raw: { width, height, channels: 3 } })
    .resize(outWidth, outHeight, { fit: "fill", kernel })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * Stretches a mask to exactly width x height with the filter of resizeImage, through 8 bits as A1111 resizes its
 * 8-bit mask images.
 */
export async function resizeMask(mask: Mask, width: number, height: number): Promise<Mask> {
  checkSize(width, height);
  if (mask.width === width && mask.height === height) return mask;
  const bytes = Buffer.alloc(mask.width * mask.height);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, mask.data[i]!)) * 255);
  const { data, info } = await sharp(bytes, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .resize(width, height, { fit: "fill" })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const out = new Float32Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]! / 255;
  return { width, height, data: out };
}

/** Encodes RGB pixels as an 8-bit PNG (no metadata; png-text.ts adds text chunks afterwards). */
export async function encodePng(image: RgbImage): Promise<Buffer> {
  return sharp(rawInput(image), { raw: { width: image.width, height: image.height, channels: 3 } })
    .png()
    .toBuffer();
}

export function rawInput(image: RgbImage): Buffer {
  const expected = image.width * image.height * 3;
  if (
    !Number.isInteger(image.width) ||
    !Number.isInteger(image.height) ||
    image.width < 1 ||
    image.height < 1 ||
    image.data.length !== expected
  ) {
    throw new InternalError(
      `RGB image of ${image.width}x${image.height} has ${image.data.length} bytes, expected ${expected}`,
    );
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
    throw new InputError(
      `image size ${width}x${height} is not valid: width and height must be positive whole numbers of pixels`,
    );
  }
}

function describe(source: ImageSource, name: string | undefined): string {
  return name ?? (typeof source === "string" ? source : "the image data");
}

/**
 * Checks an image before anything decodes it, reading only its header: refuses it when it declares more than
 * `maxPixels` (a decompression bomb is a few KB declaring hundreds of megapixels), and drops a PNG's text chunks,
 * which libvips would otherwise inflate whatever their size. Every decode goes through here; callers that pass
 * the bytes on to sharp themselves (the server's mask preparation) use the returned bytes.
 */
export async function screenImage(source: ImageSource, options: ScreenOptions = {}): Promise<ScreenedImage> {
  const name = describe(source, options.name);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  let bytes = await readSource(source, name, maxPixels);
  if (isPng(bytes)) bytes = stripPngText(bytes, name);
  let meta: Metadata;
  try {
    // The header alone (3 ms for the 16383x16383 bomb); sharp's own limit is off here so that the message below,
    // with the size and the limit, is what the user sees.
    meta = await sharp(bytes, { pages: 1, limitInputPixels: false }).metadata();
  } catch (e) {
    throw unreadable(name, e);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw unreadable(name, new Error("no image size in its header"));
  if (width * height > maxPixels) {
    const side = Math.floor(Math.sqrt(maxPixels));
    throw new InputError(
      `${name} is ${width}x${height} (${megapixels(width * height)} megapixels), more than the ${megapixels(maxPixels)} megapixels ` +
        `(${side}x${side}) accepted here; scale it down first (it is resized to the generation size anyway)`,
    );
  }
  return { bytes, width, height };
}

function megapixels(pixels: number): string {
  return (pixels / 1e6).toFixed(1);
}

/**
 * sharp over screened bytes. `pages: 1` decodes only the first frame of an animated GIF/WebP or a multi-page
 * TIFF, which is all an init image can use, so thousands of frames cost one. `limitInputPixels` is libvips'
 * own refusal by declared size, a second line behind screenImage's. libvips' other safety limits (SVG and PNG
 * sizes, sharp's `limitInputChannels`) stay on because `unlimited` and the rest are left at their defaults.
 */
function input(bytes: Uint8Array, maxPixels: number): Sharp {
  return sharp(bytes, { autoOrient: true, pages: 1, limitInputPixels: maxPixels });
}

async function open(source: ImageSource, options: ScreenOptions): Promise<Sharp> {
  const screened = await screenImage(source, options);
  return input(screened.bytes, options.maxPixels ?? DEFAULT_MAX_INPUT_PIXELS);
}

/** An image file's bytes, read with the checks of every decode: a regular file (not a pipe that never ends), of a plausible size. */
export async function readImageFile(path: string): Promise<Uint8Array> {
  return readSource(path, path, DEFAULT_MAX_INPUT_PIXELS);
}

/**
 * The encoded bytes of a source: a path is read here (refusing what is not a regular file, and files bigger than
 * any encoding of an image within the bound: its uncompressed 16-bit RGBA form plus room for metadata).
 */
async function readSource(source: ImageSource, name: string, maxPixels: number): Promise<Uint8Array> {
  const formats = acceptedFormats();
  if (typeof source !== "string") {
    if (source.length === 0) throw new InputError(`${name} is empty; send the bytes of an image (${formats})`);
    return source;
  }
  try {
    await stat(source);
  } catch {
    throw new InputError(`${name}: file not found; check the path (images accepted: ${formats})`);
  }
  const bytes = readRegularFile(source, InputError, {
    hint: `pass the path of an image (${formats})`,
    maxBytes: maxPixels * 8 + 64 * 2 ** 20,
  });
  if (bytes.length === 0) throw new InputError(`${name} is empty; pass the path of an image (${formats})`);
  return bytes;
}

function unreadable(name: string, e: unknown): InputError {
  return new InputError(
    `${name} could not be read as an image (${(e as Error).message}); use one of the formats accepted: ${acceptedFormats()}`,
  );
}

/** Decoding happens lazily inside toBuffer, so this is where unreadable content surfaces. */
async function run(
  pipeline: Sharp,
  source: ImageSource,
  name: string | undefined,
): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    return await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw unreadable(describe(source, name), e);
  }
}
