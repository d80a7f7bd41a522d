import type { ModelFamily } from "../configs/pipeline.js";
import { detectLdmFamily, type ShapeMap } from "./detect.js";
import { PART_PATTERNS, type WeightsKind } from "./part-patterns.js";

/**
 * What a .safetensors file holds, from its tensor names and shapes (and the training metadata LoRA trainers write):
 * a whole checkpoint, a LoRA, a textual-inversion embedding, a ControlNet or a VAE, and the family it is for where
 * that shows. The folder a file sits in (A1111's Lora/, ComfyUI's loras/) is a hint only: users misplace files.
 */

export type { WeightsKind };

export interface KindDetection {
  readonly kind: WeightsKind;
  /** Absent where the weights do not tell (a VAE serves every family of its latent space; unusual widths). */
  readonly family?: ModelFamily;
  /** The key that decided the kind, for messages. */
  readonly evidence?: string;
}

const UNET_PREFIX = "model.diffusion_model.";

/** The family whose cross-attention (or text) width this is: CLIP ViT-L 768, OpenCLIP ViT-H 1024, SDXL's 768+1280. */
const FAMILY_BY_WIDTH: ReadonlyMap<number, ModelFamily> = new Map([
  [768, "sd1"],
  [1024, "sd2"],
  [2048, "sdxl"],
  [1280, "sdxl-refiner"],
]);

export function detectWeightsKind(shapes: ShapeMap, metadata: Readonly<Record<string, string>> = {}): KindDetection {
  const keys = [...shapes.keys()];
  if (keys.some((k) => k.startsWith(UNET_PREFIX))) {
    try {
      const f = detectLdmFamily(shapes, "");
      return { kind: "checkpoint", family: f.family, evidence: f.evidence };
    } catch {
      return { kind: "unknown", evidence: `${UNET_PREFIX}* without a text encoder` };
    }
  }
  for (const [kind, re] of PART_PATTERNS) {
    const k = keys.find((n) => re.test(n));
    if (!k) continue;
    const family =
      kind === "lora"
        ? loraFamily(shapes, metadata)
        : kind === "embedding"
          ? embeddingFamily(shapes)
          : kind === "controlnet"
            ? crossAttentionFamily(shapes)
            : undefined;
    return { kind, ...(family ? { family } : {}), evidence: `"${k}"` };
  }
  // diffusers' textual inversion: one tensor named by its token (not a dotted weight name), [vectors, text width].
  const only = keys.length === 1 ? shapes.get(keys[0]!)! : undefined;
  if (only?.length === 2) {
    const family = FAMILY_BY_WIDTH.get(only[1]!);
    const textWidth = family === "sd1" || family === "sd2";
    if (textWidth || !keys[0]!.includes("."))
      return { kind: "embedding", ...(textWidth ? { family } : {}), evidence: `one tensor "${keys[0]}"` };
  }
  return { kind: "unknown" };
}

/**
 * kohya's trainers record the base model (ss_base_model_version: sd_v1, sd_v2_768_v, sdxl_base_v1-0; older ones
 * ss_v2); otherwise two text encoders mean SDXL, and the cross-attention input width tells SD1 from SD2.
 */
function loraFamily(shapes: ShapeMap, metadata: Readonly<Record<string, string>>): ModelFamily | undefined {
  const base = metadata.ss_base_model_version ?? "";
  if (/^sdxl/i.test(base)) return "sdxl";
  if (/^sd_v2/i.test(base) || metadata.ss_v2 === "True") return "sd2";
  if (/^sd_v1/i.test(base)) return "sd1";
  const keys = [...shapes.keys()];
  if (keys.some((k) => /^lora_te[12]_|^text_encoder_2\./.test(k))) return "sdxl";
  const k = keys.find((n) => /attn2[._]to_k.*(lora_down|lora_A)\.weight$/.test(n));
  return k ? FAMILY_BY_WIDTH.get(shapes.get(k)![1]!) : undefined;
}

/** A1111 embeddings hold [vectors, width] under emb_params or string_to_param; SDXL ones a clip_l and a clip_g. */
function embeddingFamily(shapes: ShapeMap): ModelFamily | undefined {
  if (shapes.has("clip_g") && shapes.has("clip_l")) return "sdxl";
  const k = [...shapes.keys()].find((n) => /^(emb_params|string_to_param)/.test(n));
  const shape = k ? shapes.get(k)! : undefined;
  const family = shape ? FAMILY_BY_WIDTH.get(shape[shape.length - 1]!) : undefined;
  return family === "sd1" || family === "sd2" ? family : undefined;
}

function crossAttentionFamily(shapes: ShapeMap): ModelFamily | undefined {
  const k = [...shapes.keys()].find((n) => n.endsWith("attn2.to_k.weight"));
  return k ? FAMILY_BY_WIDTH.get(shapes.get(k)![1]!) : undefined;
}
