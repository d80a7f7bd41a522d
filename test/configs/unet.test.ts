import { describe, expect, it } from "vitest";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { UnsupportedModelError } from "../../src/errors.js";

const SDXL_LIKE = {
  block_out_channels: [320, 640, 1280],
  down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
};

describe("UNet config from diffusers' config.json", () => {
  it("reads attention_head_dim as the head count unless num_attention_heads is given (diffusers' quirk)", () => {
    expect(unetConfigFromDiffusers({ attention_head_dim: 8 }).attentionHeads).toEqual([8, 8, 8, 8]);
    expect(unetConfigFromDiffusers({ attention_head_dim: [5, 10, 20, 20] }).attentionHeads).toEqual([5, 10, 20, 20]);
    expect(
      unetConfigFromDiffusers({ attention_head_dim: 64, num_attention_heads: [5, 10, 20, 20] }).attentionHeads,
    ).toEqual([5, 10, 20, 20]);
  });

  it("expands transformer_layers_per_block per level and per block, reverses it for the up path, and takes reverse_transformer_layers_per_block when given", () => {
    const sdxl = unetConfigFromDiffusers({ ...SDXL_LIKE, transformer_layers_per_block: [1, 2, 10] });
    expect(sdxl.downTransformerLayers).toEqual([
      [0, 0],
      [2, 2],
      [10, 10],
    ]); // level 0 has no attention
    expect(sdxl.upTransformerLayers).toEqual([
      [10, 10, 10],
      [2, 2, 2],
      [0, 0, 0],
    ]);
    expect(sdxl.midTransformerLayers).toBe(10);
    const asymmetric = unetConfigFromDiffusers({
      ...SDXL_LIKE,
      transformer_layers_per_block: [
        [1, 1],
        [2, 2],
        [4, 4],
      ],
      reverse_transformer_layers_per_block: [
        [4, 4, 10],
        [1, 2, 2],
        [1, 1, 1],
      ],
    });
    expect(asymmetric.downTransformerLayers).toEqual([
      [0, 0],
      [2, 2],
      [4, 4],
    ]);
    expect(asymmetric.upTransformerLayers).toEqual([
      [4, 4, 10],
      [1, 2, 2],
      [0, 0, 0],
    ]);
    expect(asymmetric.midTransformerLayers).toBe(4);
    expect(() =>
      unetConfigFromDiffusers({
        ...SDXL_LIKE,
        transformer_layers_per_block: [
          [1, 1],
          [2, 2],
          [4, 4],
        ],
      }),
    ).toThrow(
      /transformer_layers_per_block gives depths per block, so reverse_transformer_layers_per_block must give the up path's/,
    );
  });

  it("reads layers per level and the mid block type (none for BK-SDM)", () => {
    const c = unetConfigFromDiffusers({ layers_per_block: 1, mid_block_type: null });
    expect(c.layersPerBlock).toEqual([1, 1, 1, 1]);
    expect(c.midBlockType).toBeNull();
    expect(c.midTransformerLayers).toBe(0);
    expect(c.upTransformerLayers.map((l) => l.length)).toEqual([2, 2, 2, 2]);
  });

  it("reads SDXL's text_time embedding and LCM's time_cond_proj_dim", () => {
    const c = unetConfigFromDiffusers({
      addition_embed_type: "text_time",
      addition_time_embed_dim: 256,
      projection_class_embeddings_input_dim: 2816,
      time_cond_proj_dim: 256,
    });
    expect([
      c.additionEmbedType,
      c.additionTimeEmbedDim,
      c.projectionClassEmbeddingsInputDim,
      c.timeCondProjDim,
    ]).toEqual(["text_time", 256, 2816, 256]);
    expect(() => unetConfigFromDiffusers({ addition_embed_type: "text_time" })).toThrow(
      /needs addition_time_embed_dim and projection_class_embeddings_input_dim/,
    );
  });

  it("refuses, by key, the UNet variants it does not build", () => {
    for (const [key, value] of [
      ["class_embed_type", "timestep"],
      ["addition_embed_type", "text_image"],
      ["mid_block_type", "UNetMidBlock2DSimpleCrossAttn"],
      ["time_embedding_type", "fourier"],
      ["resnet_time_scale_shift", "scale_shift"],
      ["cross_attention_dim", [768, 1024, 1024, 1024]],
    ] as const) {
      let error: unknown;
      try {
        unetConfigFromDiffusers({ [key]: value }, "x/unet/config.json");
      } catch (e) {
        error = e;
      }
      expect(error, key).toBeInstanceOf(UnsupportedModelError);
      expect((error as Error).message).toContain(`x/unet/config.json: ${key}`);
    }
    expect(unetConfigFromDiffusers({ cross_attention_dim: [1024, 1024, 1024, 1024] }).crossAttentionDim).toBe(1024);
  });
});
