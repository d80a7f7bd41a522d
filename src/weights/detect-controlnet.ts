import { CheckpointError } from "../errors.js";
import { controlNetConfigFromDiffusers, type ControlNetConfig } from "../configs/controlnet.js";
import type { ModelFamily } from "../configs/pipeline.js";
import { encoderFromShapes, familyWidths, type ShapeMap } from "./detect.js";

/** A ControlNet's architecture as read from its diffusers-named shapes. */
export interface ControlNetDetection {
  config: ControlNetConfig;
  /** The family whose UNet it guides (by its cross-attention width and SDXL's add_embedding); undefined for other widths. */
  family: ModelFamily | undefined;
  /** Its widths are the family's published ones, so the head counts taken from the family are certain. */
  standardSizes: boolean;
}

/** Cross-attention widths of the families a ControlNet can guide (the refiner has no ControlNets). */
const FAMILY_BY_CONTEXT: ReadonlyMap<number, ModelFamily> = new Map([
  [768, "sd1"],
  [1024, "sd2"],
  [2048, "sdxl"],
]);

/**
 * The config of a ControlNet without a config.json, from its shapes: the encoder half as a UNet's (detect.ts), the
 * conditioning embedding's levels from its convs, the family from the cross-attention width; head counts are the
 * family's (which the weights cannot show), so only published sizes are certain.
 */
export function controlNetConfigFromShapes(s: ShapeMap, origin: string): ControlNetDetection {
  const key = [...s.keys()].find((k) => k.endsWith(".attn2.to_k.weight"));
  if (!key)
    throw new CheckpointError(
      `${origin}: the ControlNet has no cross-attention; it is not a Stable Diffusion ControlNet`,
    );
  const context = s.get(key)![1]!;
  const family = s.has("add_embedding.linear_1.weight") ? "sdxl" : FAMILY_BY_CONTEXT.get(context);
  // Widths no family publishes are read with SD1's conventions and reported as non-standard (the caller refuses them).
  const read = family ?? "sd1";
  const encoder = encoderFromShapes(s, origin, read, familyWidths(read).pooled);
  const embedding = conditioningEmbeddingFromShapes(s, origin);
  const config = controlNetConfigFromDiffusers(
    {
      ...encoder.json,
      cross_attention_dim: encoder.crossAttentionDim ?? context,
      use_linear_projection: encoder.linear ?? false,
      conditioning_channels: embedding.channels,
      conditioning_embedding_out_channels: embedding.levels,
    },
    origin,
  );
  const widths = familyWidths(read);
  const standardSizes =
    family !== undefined &&
    config.crossAttentionDim === widths.context &&
    config.blockOutChannels.length <= widths.unet.length &&
    config.blockOutChannels.every((c, i) => c === widths.unet[i]);
  return {
    config: encoder.midDepth > 0 ? { ...config, midTransformerLayers: encoder.midDepth } : config,
    family,
    standardSizes,
  };
}

/** conv_in [c0, channels, 3, 3], then blocks.{2i} [ci, ci] and blocks.{2i+1} [c(i+1), ci]: the embedding's levels. */
function conditioningEmbeddingFromShapes(s: ShapeMap, origin: string): { channels: number; levels: number[] } {
  const convIn = s.get("controlnet_cond_embedding.conv_in.weight");
  if (convIn?.length !== 4)
    throw new CheckpointError(
      `${origin}: missing or malformed "controlnet_cond_embedding.conv_in.weight"; the ControlNet is incomplete`,
    );
  const levels = [convIn[0]!];
  for (let i = 1; ; i += 2) {
    const conv = s.get(`controlnet_cond_embedding.blocks.${i}.weight`);
    if (!conv) break;
    levels.push(conv[0]!);
  }
  return { channels: convIn[1]!, levels };
}
