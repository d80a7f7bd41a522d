import { shapeOnlyWeights } from "../helpers/shape-only-weights.js";
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { buildClipVision, CLIP_VISION_IO } from "../../src/models/clip-vision.js";
import { visionConfigFromTransformers, visionTokens } from "../../src/configs/vision.js";
import { visionConfigFromWeights } from "../../src/weights/detect-clip-vision.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights, type WeightSource } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe("CLIP vision config", () => {
  it("reads the safety checker's CLIPConfig: vision_config for the tower, the top-level projection_dim", () => {
    const c = visionConfigFromTransformers({
      projection_dim: 768,
      vision_config: {
        hidden_size: 1024,
        intermediate_size: 4096,
        num_attention_heads: 16,
        num_hidden_layers: 24,
        patch_size: 14,
        projection_dim: 512,
      },
    });
    expect(c).toEqual({
      hiddenSize: 1024,
      intermediateSize: 4096,
      numHiddenLayers: 24,
      numAttentionHeads: 16,
      numChannels: 3,
      imageSize: 224,
      patchSize: 14,
      hiddenAct: "quick_gelu",
      layerNormEps: 1e-5,
      projectionDim: 768,
    });
    expect(visionTokens(c)).toBe(257);
  });

  it("applies the vision_config_dict overrides of configs written by older transformers (SD 1.x's safety_checker/)", () => {
    const c = visionConfigFromTransformers({
      projection_dim: 768,
      vision_config: { hidden_size: 768, num_attention_heads: 12, num_hidden_layers: 12, patch_size: 32 },
      vision_config_dict: {
        hidden_size: 1024,
        intermediate_size: 4096,
        num_attention_heads: 16,
        num_hidden_layers: 24,
        patch_size: 14,
      },
    });
    expect(c).toMatchObject({
      hiddenSize: 1024,
      intermediateSize: 4096,
      numAttentionHeads: 16,
      numHiddenLayers: 24,
      patchSize: 14,
      projectionDim: 768,
    });
  });

  it("reads a bare CLIPVisionConfig and rejects activations it cannot build", () => {
    expect(
      visionConfigFromTransformers({ hidden_size: 64, num_attention_heads: 2, projection_dim: 32, hidden_act: "gelu" }),
    ).toMatchObject({ hiddenSize: 64, projectionDim: 32, hiddenAct: "gelu", patchSize: 32 });
    expect(() => visionConfigFromTransformers({ vision_config: { hidden_act: "relu" } })).toThrow(/hidden_act "relu"/);
    expect(() => visionConfigFromTransformers({ vision_config: { hidden_size: 30, num_attention_heads: 4 } })).toThrow(
      /not divisible/,
    );
  });
});

/** Tensor shapes of the real safety checker (CLIP ViT-L/14, projection 768), without data: enough to build the graph. */
function vitL14Shapes(): WeightSource {
  const shapes = new Map<string, number[]>([
    ["vision_model.vision_model.embeddings.class_embedding", [1024]],
    ["vision_model.vision_model.embeddings.patch_embedding.weight", [1024, 3, 14, 14]],
    ["vision_model.vision_model.embeddings.position_embedding.weight", [257, 1024]],
    ["vision_model.vision_model.pre_layrnorm.weight", [1024]],
    ["vision_model.vision_model.pre_layrnorm.bias", [1024]],
    ["vision_model.vision_model.post_layernorm.weight", [1024]],
    ["vision_model.vision_model.post_layernorm.bias", [1024]],
    ["visual_projection.weight", [768, 1024]],
  ]);
  for (let i = 0; i < 24; i++) {
    const l = `vision_model.vision_model.encoder.layers.${i}`;
    for (const n of ["layer_norm1", "layer_norm2"])
      shapes.set(`${l}.${n}.weight`, [1024]).set(`${l}.${n}.bias`, [1024]);
    for (const n of ["q_proj", "k_proj", "v_proj", "out_proj"])
      shapes.set(`${l}.self_attn.${n}.weight`, [1024, 1024]).set(`${l}.self_attn.${n}.bias`, [1024]);
    shapes
      .set(`${l}.mlp.fc1.weight`, [4096, 1024])
      .set(`${l}.mlp.fc1.bias`, [4096])
      .set(`${l}.mlp.fc2.weight`, [1024, 4096])
      .set(`${l}.mlp.fc2.bias`, [1024]);
  }
  return shapeOnlyWeights(shapes, "vit-l-14 shapes");
}

describe("CLIP vision tower at the real safety checker's size", () => {
  it("builds ViT-L/14 (24 layers, 257 tokens, projection 768) with every tensor named as the checkpoint names it", () => {
    const w = new ScopedWeights(vitL14Shapes());
    const config = visionConfigFromWeights(w.sub("vision_model.vision_model"), w.sub("visual_projection"));
    expect(config).toMatchObject({
      hiddenSize: 1024,
      numAttentionHeads: 16,
      numHiddenLayers: 24,
      intermediateSize: 4096,
      patchSize: 14,
      imageSize: 224,
      projectionDim: 768,
    });
    const g = buildClipVision(config, w.sub("vision_model.vision_model"), w.sub("visual_projection"));
    const weights = [...g.initializers.keys()].filter((k) => w.source.has(k));
    expect(weights.sort()).toEqual(w.source.keys().sort());
    expect(g.outputs.map((o) => [o.name, o.dims])).toEqual([
      [CLIP_VISION_IO.pooled, ["batch", 1024]],
      [CLIP_VISION_IO.imageEmbeds, ["batch", 768]],
    ]);
  });
});

describe.skipIf(!HAVE_REFERENCE)("CLIP vision tower (safety-tiny, diffusers safety_checker/ key names)", () => {
  const dir = "models/safety-tiny/safety_checker";

  it("infers the architecture from the tensors' shapes as config.json states it (heads aside)", () => {
    const config = visionConfigFromTransformers(JSON.parse(readFileSync(ref(dir, "config.json"), "utf8")));
    const w = new ScopedWeights(fileWeightSource(SafetensorsFile.open(ref(dir, "model.safetensors"))));
    const inferred = visionConfigFromWeights(w.sub("vision_model.vision_model"), w.sub("visual_projection"));
    expect({ ...inferred, numAttentionHeads: config.numAttentionHeads }).toEqual(config);
  });

  it("matches transformers' pooled output and the visual projection's image embeddings", async () => {
    const config = visionConfigFromTransformers(JSON.parse(readFileSync(ref(dir, "config.json"), "utf8")));
    const w = new ScopedWeights(fileWeightSource(SafetensorsFile.open(ref(dir, "model.safetensors"))));
    const g = buildClipVision(config, w.sub("vision_model.vision_model"), w.sub("visual_projection"));
    const session = await Session.create(serializeGraph(g), { threads: 1 });
    const gold = golden("goldens/safety/safety.safetensors");
    const shape = gold.shape("clip_input");
    const out = await session.run({ [CLIP_VISION_IO.pixelValues]: { data: gold.get("clip_input"), dims: shape } });
    const pooled = relErr(out[CLIP_VISION_IO.pooled]!.data, gold.get("pooled_output"));
    const embeds = relErr(out[CLIP_VISION_IO.imageEmbeds]!.data, gold.get("image_embeds"));
    expect(out[CLIP_VISION_IO.imageEmbeds]!.dims).toEqual([shape[0], config.projectionDim]);
    expect(pooled).toBeLessThan(1e-4);
    expect(embeds).toBeLessThan(1e-4);
    console.log(`vision tower rel err: pooled ${pooled.toExponential(2)}, image embeds ${embeds.toExponential(2)}`);
    await session.release();
  });
});
