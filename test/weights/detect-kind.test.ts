import { describe, expect, it } from "vitest";
import { detectWeightsKind } from "../../src/weights/detect-kind.js";
import { ldmShapes, SD15_SPEC, SDXL_SPEC } from "./ldm-headers.js";

const shapes = (o: Record<string, number[]>) => new Map(Object.entries(o));

describe("what a .safetensors file holds, from its keys", () => {
  it("whole checkpoints with their family", () => {
    expect(detectWeightsKind(ldmShapes(SD15_SPEC))).toMatchObject({ kind: "checkpoint", family: "sd1" });
    expect(detectWeightsKind(ldmShapes(SDXL_SPEC))).toMatchObject({ kind: "checkpoint", family: "sdxl" });
  });

  it("LoRAs: kohya's recorded base model first, then SDXL's two encoders, then the cross-attention width", () => {
    const kohya = shapes({ "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 32] });
    expect(detectWeightsKind(kohya, { ss_base_model_version: "sdxl_base_v1-0" })).toMatchObject({
      kind: "lora",
      family: "sdxl",
    });
    expect(detectWeightsKind(kohya, { ss_v2: "True" })).toMatchObject({ kind: "lora", family: "sd2" });
    expect(
      detectWeightsKind(shapes({ "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 1280] })),
    ).toMatchObject({ kind: "lora", family: "sdxl" });
    expect(
      detectWeightsKind(
        shapes({ "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": [4, 1024] }),
      ),
    ).toMatchObject({ kind: "lora", family: "sd2" });
    expect(detectWeightsKind(kohya).family).toBeUndefined();
  });

  it("embeddings (A1111, SDXL's clip_l + clip_g, diffusers' one tensor), ControlNets, VAEs; anything else is unknown", () => {
    expect(detectWeightsKind(shapes({ emb_params: [3, 1024] }))).toMatchObject({ kind: "embedding", family: "sd2" });
    expect(detectWeightsKind(shapes({ clip_l: [2, 768], clip_g: [2, 1280] }))).toMatchObject({
      kind: "embedding",
      family: "sdxl",
    });
    expect(detectWeightsKind(shapes({ "<my-token>": [1, 768] }))).toMatchObject({ kind: "embedding", family: "sd1" });
    expect(
      detectWeightsKind(
        shapes({ "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768] }),
      ),
    ).toMatchObject({ kind: "controlnet", family: "sd1" });
    expect(
      detectWeightsKind(shapes({ "encoder.conv_in.weight": [128, 3, 3, 3], "decoder.conv_in.weight": [512, 4, 3, 3] }))
        .kind,
    ).toBe("vae");
    expect(detectWeightsKind(shapes({ "something.else": [3, 3] })).kind).toBe("unknown");
  });
});
