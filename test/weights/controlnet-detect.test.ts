import { describe, expect, it } from "vitest";
import { CheckpointError } from "../../src/errors.js";
import { openControlNet } from "../../src/models/open-controlnet.js";
import { controlNetLdmShapes, SD15_SPEC, SD21_SPEC, sparseCheckpoint, sparseFile } from "./ldm-headers.js";

describe("single-file ControlNets in lllyasviel's layout (full-size headers written from cldm.ControlNet's module terms)", () => {
  for (const [name, prefix] of [
    ["ControlNet 1.0 (control_model.*)", "control_model."],
    ["ControlNet 1.1 (no prefix)", ""],
  ] as const) {
    it(`${name} for SD1.5: detected as an SD1 ControlNet with 8 heads and the published conditioning embedding, every tensor mapped`, () => {
      const path = sparseFile(controlNetLdmShapes(SD15_SPEC.unet, prefix));
      const cn = openControlNet(path);
      try {
        expect(cn.family).toBe("sd1");
        expect(cn.config.blockOutChannels).toEqual([320, 640, 1280, 1280]);
        expect(cn.config.attentionHeads).toEqual([8, 8, 8, 8]);
        expect(cn.config.crossAttentionDim).toBe(768);
        expect(cn.config.conditioningEmbeddingOutChannels).toEqual([16, 32, 96, 256]);
        expect(cn.config.conditioningChannels).toBe(3);
        expect(cn.config.useLinearProjection).toBe(false);
        // The zero convolutions: one per skip connection (12 for SD1.5) and the mid block's.
        expect(
          cn.weights.keys().filter((k) => k.startsWith("controlnet_down_blocks.") && k.endsWith(".weight")),
        ).toHaveLength(12);
        expect(cn.weights.has("controlnet_mid_block.weight")).toBe(true);
        expect(cn.weights.has("controlnet_cond_embedding.conv_out.weight")).toBe(true);
      } finally {
        cn.close();
      }
    });
  }

  it("an SD2.1 ControlNet (1024-wide text, linear projections) gets SD2's 64-wide heads", () => {
    const cn = openControlNet(sparseFile(controlNetLdmShapes(SD21_SPEC.unet)));
    try {
      expect(cn.family).toBe("sd2");
      expect(cn.config.attentionHeads).toEqual([5, 10, 20, 20]);
      expect(cn.config.useLinearProjection).toBe(true);
    } finally {
      cn.close();
    }
  });

  it("a whole checkpoint given as a ControlNet is refused with a message saying to pass it as the model", () => {
    const path = sparseCheckpoint(SD15_SPEC);
    expect(() => openControlNet(path)).toThrow(CheckpointError);
    expect(() => openControlNet(path)).toThrow(/not a ControlNet.*--model/);
  });

  it("a missing zero convolution is named", () => {
    const shapes = controlNetLdmShapes(SD15_SPEC.unet);
    shapes.delete("control_model.zero_convs.5.0.weight");
    expect(() => openControlNet(sparseFile(shapes))).toThrow(/controlnet_down_blocks\.5\.weight/);
  });
});
