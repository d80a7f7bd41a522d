import type { ScopedWeights } from "./weight-source.js";
import { checkVisionConfig, VISION_DEFAULTS, type VisionConfig } from "../configs/vision.js";

/**
 * Reads the architecture off the tensors when no config.json comes with them (a bare .safetensors file).
 * The head count is not stored in any shape: CLIP's towers use 64-wide heads, which gives 16 for ViT-L/14.
 */
export function visionConfigFromWeights(tower: ScopedWeights, projection?: ScopedWeights): VisionConfig {
  const [hidden, channels, patch] = tower.shape("embeddings.patch_embedding.weight") as [
    number,
    number,
    number,
    number,
  ];
  const positions = tower.shape("embeddings.position_embedding.weight")[0]!;
  const grid = Math.round(Math.sqrt(positions - 1));
  let layers = 0;
  while (tower.sub("encoder.layers").sub(layers).has("layer_norm1.weight")) layers++;
  const config: VisionConfig = {
    hiddenSize: hidden,
    intermediateSize:
      layers > 0 ? tower.shape("encoder.layers.0.mlp.fc1.weight")[0]! : VISION_DEFAULTS.intermediateSize,
    numHiddenLayers: layers,
    numAttentionHeads: hidden % 64 === 0 ? hidden / 64 : 1,
    numChannels: channels,
    imageSize: grid * patch,
    patchSize: patch,
    hiddenAct: "quick_gelu",
    layerNormEps: VISION_DEFAULTS.layerNormEps,
    projectionDim: projection?.has("weight") ? projection.shape("weight")[0]! : hidden,
  };
  checkVisionConfig(config, tower.source.origin);
  return config;
}
