/**
 * A plain description with no dependency's types in it: the pipeline's public types name it, and a type from the C2PA
 * library reaching them would be compiled in every user's project (typed-binary's Float16Array broke builds on ES2022).
 */
/** What the manifest records about how an image was made. */
export interface ProvenanceInfo {
  /** Model name or hash, as the infotext names it. */
  readonly model: string;
  readonly sampler: string;
  readonly prompt?: string;
  readonly negativePrompt?: string;
  /** Seeds run to 2^64 - 1: one beyond 2^53 - 1 is recorded exactly, as a CBOR unsigned 64-bit integer. */
  readonly seed?: number | bigint;
  readonly steps?: number;
  readonly cfgScale?: number;
  readonly denoisingStrength?: number;
  /** img2img / sketch-to-image: the encoded input image, recorded as an `inputTo` ingredient by its hash. */
  readonly ingredient?: Uint8Array;
  /** The input's file name, shown by readers; defaults to "init image". */
  readonly ingredientTitle?: string;
  /** Safeguards turned off for this image ("watermark", "safety checker"), so the manifest says so too. */
  readonly safeguardsOff?: readonly string[];
}
