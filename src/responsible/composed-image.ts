import { randomUUID } from "node:crypto";
import type { RgbImage } from "../image/codec.js";
import { encodeImage } from "../image/encode-image.js";
import { quoteInfotextValue } from "../image/infotext.js";
import type { ImageFormat } from "../image/output-format.js";
import { resolveSigner, signImage, type ProvenanceSigner } from "./provenance/index.js";
import type { ProvenanceInfo } from "./provenance/provenance-info.js";
import type { SignerConfig } from "./provenance/signer-settings.js";
import { markImage } from "./watermark/mark-image.js";
import { RobustWatermark } from "./watermark/robust.js";

/** The safeguards of an image composed from generated ones (an X/Y/Z plot's grid), as the generation had them. */
export interface ComposedImageSafeguards {
  /** Invisible watermarks (default true). */
  watermark?: boolean;
  /** C2PA content credentials: a signer config, true for the default signer (default), or false. */
  provenance?: boolean | SignerConfig;
  /** A signer already resolved (a pipeline's, a server's). */
  signer?: Promise<ProvenanceSigner>;
  /** The robust mark's job id (random by default). */
  jobId?: string;
}

/**
 * An image composed from generated images goes out as they do: the invisible watermarks over the whole of it (its
 * parts carry theirs, but tiling and labels change what a detector sees), its infotext where the format keeps it,
 * then C2PA content credentials, last. Returns the bytes and the infotext they carry. The safety checker is not run again: the parts were checked, and a flagged
 * part is already what its policy made of it (black, blurred or marked).
 */
export async function finishComposedImage(
  image: RgbImage,
  infotext: string,
  info: ProvenanceInfo,
  format: ImageFormat,
  safeguards: ComposedImageSafeguards = {},
): Promise<{ bytes: Buffer; infotext: string }> {
  const off: string[] = [...(info.safeguardsOff ?? [])];
  let out = image;
  let text = infotext;
  if (safeguards.watermark === false) {
    if (!off.includes("watermark")) off.push("watermark");
  } else {
    const marked = markImage(new RobustWatermark(), image, safeguards.jobId ?? randomUUID());
    out = marked.image;
    // The parts' own note ("none (image smaller than 128x128)") would be wrong for the whole: it says its own.
    text = withWatermarkNote(infotext, marked.note);
  }
  const bytes = await encodeImage(out, format, text);
  if (safeguards.provenance === false) return { bytes, infotext: text };
  const signer =
    safeguards.signer ?? resolveSigner(typeof safeguards.provenance === "object" ? safeguards.provenance : {});
  return { bytes: await signImage(bytes, { ...info, safeguardsOff: off }, await signer), infotext: text };
}

/** The infotext's "Watermark" field set to `note`, or left out when the image carries the marks (no note). */
function withWatermarkNote(infotext: string, note: string | undefined): string {
  const lines = infotext.split("\n");
  const last = lines.length - 1;
  const field = /(?:, )?Watermark: (?:"(?:[^"\\]|\\.)*"|[^,]*)/;
  const without = lines[last]!.replace(field, "");
  lines[last] = note === undefined ? without : `${without}, Watermark: ${quoteInfotextValue(note)}`;
  return lines.join("\n");
}
