import { IMAGE_FORMATS, type ImageFormat } from "../../image/output-format.js";

/**
 * The formats diffuse writes that can carry its C2PA manifest: those the c2pa-ts library has an asset handler
 * for (PNG: a caBX chunk; JPEG: APP11 segments). WebP has none in the installed version, so a WebP written by
 * diffuse carries no content credentials, and generating one with provenance on is refused up front. Kept apart
 * from signable-asset.ts, which loads that library: commands check a format without loading it.
 */
const SIGNABLE: ReadonlySet<ImageFormat> = new Set(["png", "jpeg"]);

export function canCarryCredentials(format: ImageFormat): boolean {
  return SIGNABLE.has(format);
}

/** "PNG and JPEG", for messages. */
export function signableFormatNames(): string {
  return [...SIGNABLE].map((f) => IMAGE_FORMATS[f].name).join(" and ");
}
