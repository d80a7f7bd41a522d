/**
 * Safetensors files that are parts or add-ons rather than whole checkpoints, recognised by one of their keys (the
 * first match wins): what detect.ts refuses to open as a checkpoint, and what detect-kind.ts names in a listing.
 */

export type WeightsKind =
  | "checkpoint"
  | "lora"
  | "embedding"
  | "controlnet"
  | "t2i-adapter"
  | "vae"
  | "text-encoder"
  | "diffusers-component"
  | "unknown";

export type PartKind = Exclude<WeightsKind, "checkpoint" | "unknown">;

/** Files that are not whole checkpoints, by a key of theirs; the first match wins. */
export const PART_PATTERNS: ReadonlyArray<readonly [PartKind, RegExp]> = [
  ["lora", /^lora_(unet|te\d?)_|\.lora_(down|up)\.weight$|\.lora_[AB]\.weight$|\.(hada|lokr)_w1(_a)?$/],
  ["embedding", /^(string_to_param|emb_params|clip_[lg])(\.|$)/],
  ["controlnet", /^(control_model\.|controlnet_cond_embedding\.|input_hint_block\.)/],
  // Before "diffusers-component": TencentARC's original adapters have a conv_in.weight at the root too.
  ["t2i-adapter", /^(adapter\.)?body\.\d+\.(resnets\.\d+\.|body\.\d+\.)?block1\.weight$/],
  ["vae", /^(encoder|decoder)\.(conv_in\.weight|layers\.0\.weight)$/],
  ["diffusers-component", /^(conv_in|time_embedding\.linear_1|down_blocks\.0\.resnets\.0\.conv1)\.weight$/],
  ["text-encoder", /^text_model\.embeddings\.token_embedding\.weight$/],
];
