import { createHash } from "node:crypto";

/**
 * An input image (a sketch or photo for img2img) as a C2PA ingredient. The bytes themselves are not embedded:
 * that would copy a user's photo into every output and double the file size. The ingredient names them by
 * their SHA-256 instead, as a `data` reference whose URL is an RFC 6920 "ni" URI (a URI made of the hash),
 * so anyone holding the original file can check that it is the one used.
 */
export interface IngredientDescription {
  readonly title: string;
  /** IANA media type sniffed from the bytes. */
  readonly format: string;
  readonly sha256: Uint8Array;
  /** `ni:///sha-256;<base64url>` */
  readonly uri: string;
}

export function describeIngredient(bytes: Uint8Array, title = "init image"): IngredientDescription {
  const sha256 = new Uint8Array(createHash("sha256").update(bytes).digest());
  return { title, format: sniffMediaType(bytes), sha256, uri: niUri(sha256) };
}

export function niUri(sha256: Uint8Array): string {
  return `ni:///sha-256;${Buffer.from(sha256).toString("base64url")}`;
}

/** True when `bytes` hash to `sha256`: the check a reader makes with the original input file in hand. */
export function ingredientMatches(bytes: Uint8Array, sha256Hex: string): boolean {
  return createHash("sha256").update(bytes).digest("hex") === sha256Hex.toLowerCase();
}

function sniffMediaType(b: Uint8Array): string {
  const starts = (...sig: number[]) => sig.every((v, i) => b[i] === v);
  if (starts(0x89, 0x50, 0x4e, 0x47)) return "image/png";
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  if (starts(0x52, 0x49, 0x46, 0x46) && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50)
    return "image/webp";
  if (starts(0x47, 0x49, 0x46, 0x38)) return "image/gif";
  return "application/octet-stream";
}
