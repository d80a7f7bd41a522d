import { randomUUID } from "node:crypto";
import { InputError } from "../errors.js";
import { decodeImage, encodePng, type RgbImage } from "../image/codec.js";
import { encodeImage } from "../image/encode-image.js";
import { readImageParameters } from "../image/image-parameters.js";
import type { ImageFormat } from "../image/output-format.js";
import { quoteInfotextValue } from "../image/infotext.js";
import { isPng, writePngText } from "../image/png-text.js";
import {
  canCarryCredentials,
  type ProvenanceSigner,
  resolveSigner,
  type SignerConfig,
  signImage,
} from "../responsible/provenance/index.js";
import { markImage } from "../responsible/watermark/mark-image.js";
import { RobustWatermark } from "../responsible/watermark/robust.js";
import type { Upscaler } from "./upscaler.js";

/**
 * A1111's "Extras" upscale of one image file: by a factor (`scale`, A1111's upscaling_resize) or to a size
 * (`width` x `height`, upscaling_resize_w/h, optionally cropped to exactly that size), with the upscaler chosen by
 * name. The result gets what every image diffuse makes gets: the invisible watermarks and C2PA content
 * credentials (the input recorded as an ingredient); its text is A1111's postprocessing infotext
 * ("Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+"), kept in the PNG "extras" chunk beside the
 * input's own "parameters", as A1111 writes it.
 */
export interface PostprocessRequest {
  readonly upscaler: Upscaler;
  /** Upscale by this factor (A1111's resize_mode 0). */
  readonly scale?: number;
  /** Upscale to this size (resize_mode 1): by the larger of the two ratios, then cropped when `crop`. */
  readonly width?: number;
  readonly height?: number;
  readonly crop?: boolean;
  /** A1111's "Upscaler 2": upscaled the same way and blended in with this visibility (0 to 1). */
  readonly second?: { readonly upscaler: Upscaler; readonly visibility: number };
  readonly format?: ImageFormat;
  /** Invisible watermarks (default true); off is written into the infotext. */
  readonly watermark?: boolean;
  /** C2PA content credentials: a signer config, true for the default signer (default), or false. */
  readonly provenance?: boolean | SignerConfig;
  /** A signer resolved once by a caller that upscales many images. */
  readonly signer?: Promise<ProvenanceSigner>;
  /** The input's name in messages and in the manifest. */
  readonly name?: string;
  readonly signal?: AbortSignal;
}

export interface PostprocessResult {
  readonly bytes: Buffer;
  readonly width: number;
  readonly height: number;
  /** A1111's postprocessing infotext of this image. */
  readonly infotext: string;
}

/** A1111's extras slider ends at 8x; larger factors are refused before any work. */
export const MAX_UPSCALE_FACTOR = 8;

export async function postprocessUpscale(input: Uint8Array, req: PostprocessRequest): Promise<PostprocessResult> {
  const name = req.name ?? "the image";
  const image = await decodeImage(input, { name });
  const info: Array<[string, string]> = [];
  let out: RgbImage = image;
  if (req.upscaler.name !== "None") {
    const { factor, target } = sizing(image, req);
    const w = Math.floor((image.width * factor) / 8) * 8 || Math.max(1, Math.round(image.width * factor));
    const h = Math.floor((image.height * factor) / 8) * 8 || Math.max(1, Math.round(image.height * factor));
    if (target) info.push(["Postprocess upscale to", `${target.width}x${target.height}`]);
    else info.push(["Postprocess upscale by", String(factor)]);
    const data = await req.upscaler.upscale(image.data, image.width, image.height, w, h, req.signal);
    const second = req.second;
    if (second && second.upscaler.name !== "None" && second.visibility > 0) {
      const other = await second.upscaler.upscale(image.data, image.width, image.height, w, h, req.signal);
      // PIL's Image.blend, as A1111: a + (b - a) * visibility, per channel.
      for (let i = 0; i < data.length; i++)
        data[i] = Math.round(data[i]! + (other[i]! - data[i]!) * Math.min(1, second.visibility));
    }
    out = { width: w, height: h, data };
    if (target && req.crop !== false) {
      out = centred(out, target.width, target.height);
      info.push(["Postprocess crop to", `${out.width}x${out.height}`]);
    }
    info.push(["Postprocess upscaler", req.upscaler.name]);
    if (second && second.upscaler.name !== "None" && second.visibility > 0)
      info.push(["Postprocess upscaler 2", second.upscaler.name]);
  }
  const off: string[] = [];
  if (req.watermark === false) {
    info.push(["Watermark", "off"]);
    off.push("watermark");
  } else {
    const marked = markImage(new RobustWatermark(), out, randomUUID());
    if (marked.note) info.push(["Watermark", marked.note]);
    out = marked.image;
  }
  if (req.provenance === false) info.push(["Provenance", "off"]);
  const infotext = info.map(([k, v]) => `${k}: ${quoteInfotextValue(v)}`).join(", ");
  const format = req.format ?? "png";
  const parameters = isPng(input) || format !== "png" ? (await readImageParameters(input, name)).parameters : undefined;
  let bytes: Buffer;
  if (format === "png") {
    const png = await encodePng(out);
    const chunks = [
      ...(parameters === undefined ? [] : [{ keyword: "parameters", text: parameters }]),
      ...(infotext ? [{ keyword: "extras", text: infotext }] : []),
    ];
    bytes = chunks.length ? writePngText(png, chunks) : png;
  } else {
    // JPEG and WebP have one UserComment: the input's parameters when it had some, else the postprocessing text.
    bytes = await encodeImage(out, format, parameters ?? (infotext || undefined));
  }
  if (req.provenance !== false && canCarryCredentials(format)) {
    const signer = req.signer ?? resolveSigner(typeof req.provenance === "object" ? req.provenance : {});
    bytes = await signImage(
      bytes,
      {
        model: req.upscaler.name,
        sampler: "upscaler",
        ingredient: input,
        ingredientTitle: req.name,
        safeguardsOff: off,
      },
      await signer,
    );
  }
  return { bytes, width: out.width, height: out.height, infotext };
}

function sizing(
  image: RgbImage,
  req: PostprocessRequest,
): { factor: number; target?: { width: number; height: number } } {
  if (req.width !== undefined || req.height !== undefined) {
    const width = req.width ?? 0;
    const height = req.height ?? 0;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
      throw new InputError(`upscale to ${width}x${height}: give both a width and a height of at least 1 pixel`);
    const factor = Math.max(width / image.width, height / image.height);
    checkFactor(factor, `upscaling ${image.width}x${image.height} to ${width}x${height}`);
    return { factor, target: { width, height } };
  }
  const factor = req.scale ?? 2;
  checkFactor(factor, `upscale by ${factor}`);
  return { factor };
}

function checkFactor(factor: number, what: string): void {
  if (!Number.isFinite(factor) || factor <= 0 || factor > MAX_UPSCALE_FACTOR)
    throw new InputError(
      `${what}: the factor must be above 0 and at most ${MAX_UPSCALE_FACTOR}, as in A1111's extras; ask for a smaller size`,
    );
}

/** The image centred on a black canvas of exactly width x height (cut where larger), as A1111's "crop to fit". */
function centred(image: RgbImage, width: number, height: number): RgbImage {
  if (image.width === width && image.height === height) return image;
  const data = new Uint8Array(width * height * 3);
  const dx = Math.floor(width / 2) - Math.floor(image.width / 2);
  const dy = Math.floor(height / 2) - Math.floor(image.height / 2);
  for (let y = 0; y < height; y++) {
    const sy = y - dy;
    if (sy < 0 || sy >= image.height) continue;
    const x0 = Math.max(0, dx);
    const x1 = Math.min(width, dx + image.width);
    if (x1 <= x0) continue;
    data.set(
      image.data.subarray((sy * image.width + x0 - dx) * 3, (sy * image.width + x1 - dx) * 3),
      (y * width + x0) * 3,
    );
  }
  return { width, height, data };
}
