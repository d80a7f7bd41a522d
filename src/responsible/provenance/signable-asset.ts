import { JPEG, PNG, type Asset } from "@trustnxt/c2pa-ts/asset";
import { InputError } from "../../errors.js";
import { formatNames, IMAGE_FORMATS, sniffFormat, type ImageFormat } from "../../image/output-format.js";

/**
 * The formats diffuse writes that can carry its C2PA manifest: those the c2pa-ts library has an asset handler
 * for (PNG: a caBX chunk; JPEG: APP11 segments). WebP has none in the installed version, so a WebP written by
 * diffuse carries no content credentials, and generating one with provenance on is refused up front.
 */
const SIGNABLE: ReadonlySet<ImageFormat> = new Set(["png", "jpeg"]);

export function canCarryCredentials(format: ImageFormat): boolean {
  return SIGNABLE.has(format);
}

/** "PNG and JPEG", for messages. */
export function signableFormatNames(): string {
  return [...SIGNABLE].map((f) => IMAGE_FORMATS[f].name).join(" and ");
}

export interface SignableAsset {
  readonly format: ImageFormat;
  readonly asset: Asset;
}

/**
 * The c2pa-ts asset for encoded image bytes; undefined for a format that cannot carry credentials (WebP).
 * Bytes in no format diffuse knows, or a damaged file, are an InputError naming `name`.
 */
export function openSignableAsset(bytes: Uint8Array, name: string): SignableAsset | undefined {
  const format = sniffFormat(bytes);
  if (format === undefined) throw new InputError(`${name} is not a ${formatNames()} image`);
  if (!canCarryCredentials(format)) return undefined;
  try {
    return { format, asset: format === "png" ? new PNG(bytes) : new JPEG(bytes) };
  } catch (e) {
    throw new InputError(
      `${name} is a damaged ${IMAGE_FORMATS[format].name} file (${(e as Error).message}); re-export or re-download it`,
    );
  }
}
