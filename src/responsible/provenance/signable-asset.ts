import { JPEG, PNG, type Asset } from "@trustnxt/c2pa-ts/asset";
import { InputError } from "../../errors.js";
import { formatNames, IMAGE_FORMATS, sniffFormat, type ImageFormat } from "../../image/output-format.js";
import { canCarryCredentials } from "./signable-formats.js";

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
