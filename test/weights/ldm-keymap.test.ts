import { afterEach, describe, expect, it, vi } from "vitest";
import { CheckpointError } from "../../src/errors.js";
import { ldmComponentWeights, mapLdmNames, mapLdmShapes, type Component } from "../../src/weights/ldm-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const FOLDER_FILES: Record<Component, string> = {
  unet: "models/sd15-tiny/unet/diffusion_pytorch_model.safetensors",
  vae: "models/sd15-tiny/vae/diffusion_pytorch_model.safetensors",
  textEncoder: "models/sd15-tiny/text_encoder/model.safetensors",
};

describe.skipIf(!HAVE_REFERENCE)("LDM key map on sd15-tiny", () => {
  afterEach(() => vi.restoreAllMocks());

  for (const component of ["unet", "vae", "textEncoder"] as const) {
    it(`the single file's ${component} has the diffusers folder's key set, shapes and fp32 values`, () => {
      const single = SafetensorsFile.open(ref("models/sd15-tiny.ldm.safetensors"));
      const folderFile = SafetensorsFile.open(ref(FOLDER_FILES[component]));
      const mapped = ldmComponentWeights(single, component);
      const folder = fileWeightSource(folderFile);
      expect(mapped.keys().sort()).toEqual(folder.keys().sort());
      let compared = 0;
      for (const k of folder.keys()) {
        expect(mapped.shape(k), k).toEqual(folder.shape(k));
        expect(mapped.dtype(k)).toBe("F16");
        const a = mapped.float32(k), b = folder.float32(k);
        expect(a.length, k).toBe(b.length);
        // The tiny weights are exactly representable in fp16, so the upcast must reproduce the fp32 folder bit for bit.
        expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), k).toBe(true);
        compared += a.length;
      }
      expect(compared).toBeGreaterThan(0);
      single.close();
      folderFile.close();
    });
  }

  it("squeezes the VAE attention's 1x1 conv weights to linear weights and reverses the decoder's levels", () => {
    const single = SafetensorsFile.open(ref("models/sd15-tiny.ldm.safetensors"));
    const vae = ldmComponentWeights(single, "vae");
    expect(single.info("first_stage_model.decoder.mid.attn_1.q.weight").shape).toEqual([32, 32, 1, 1]);
    expect(vae.shape("decoder.mid_block.attentions.0.to_q.weight")).toEqual([32, 32]);
    expect(vae.shape("decoder.mid_block.attentions.0.to_out.0.weight")).toEqual([32, 32]);
    expect(vae.shape("decoder.mid_block.attentions.0.to_q.bias")).toEqual([32]);
    expect(vae.locate("decoder.up_blocks.0.upsamplers.0.conv.weight")).toContain('"first_stage_model.decoder.up.3.upsample.conv.weight"');
    expect(vae.locate("decoder.up_blocks.3.resnets.0.conv_shortcut.weight")).toContain('"first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"');
    single.close();
  });

  it("reads no tensor data until float32() is called", () => {
    const bytes = vi.spyOn(SafetensorsFile.prototype, "bytes");
    const single = SafetensorsFile.open(ref("models/sd15-tiny.ldm.safetensors"));
    const unet = ldmComponentWeights(single, "unet");
    for (const k of unet.keys()) {
      unet.shape(k);
      unet.dtype(k);
    }
    expect(bytes).not.toHaveBeenCalled();
    unet.float32("conv_in.weight");
    expect(bytes).toHaveBeenCalledTimes(1);
    expect(bytes).toHaveBeenCalledWith("model.diffusion_model.input_blocks.0.0.weight");
    single.close();
  });
});

describe("LDM key map rules", () => {
  it("places input, middle and output blocks by their running index", () => {
    const names = [
      "model.diffusion_model.input_blocks.0.0.weight",
      "model.diffusion_model.input_blocks.2.1.proj_in.weight",
      "model.diffusion_model.input_blocks.3.0.op.weight",
      "model.diffusion_model.input_blocks.4.0.skip_connection.bias",
      "model.diffusion_model.middle_block.2.emb_layers.1.weight",
      "model.diffusion_model.output_blocks.2.1.conv.weight",
      "model.diffusion_model.output_blocks.5.2.conv.weight",
      "model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn2.to_k.weight",
      "model.diffusion_model.out.2.bias",
      "model.diffusion_model.time_embed.2.weight",
    ];
    expect(mapLdmNames("unet", names, "t").map((m) => m.name)).toEqual([
      "conv_in.weight",
      "down_blocks.0.attentions.1.proj_in.weight",
      "down_blocks.0.downsamplers.0.conv.weight",
      "down_blocks.1.resnets.0.conv_shortcut.bias",
      "mid_block.resnets.1.time_emb_proj.weight",
      "up_blocks.0.upsamplers.0.conv.weight",
      "up_blocks.1.upsamplers.0.conv.weight",
      "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight",
      "conv_out.bias",
      "time_embedding.linear_2.weight",
    ]);
  });

  it("accepts text encoders saved without the text_model. level and drops position_ids", () => {
    const shapes = new Map<string, number[]>([
      ["cond_stage_model.transformer.embeddings.token_embedding.weight", [10, 4]],
      ["cond_stage_model.transformer.embeddings.position_ids", [1, 77]],
      ["cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight", [8, 4]],
      ["cond_stage_model.transformer.final_layer_norm.bias", [4]],
    ]);
    expect([...mapLdmShapes("textEncoder", shapes, "t").keys()]).toEqual([
      "text_model.embeddings.token_embedding.weight",
      "text_model.encoder.layers.0.mlp.fc1.weight",
      "text_model.final_layer_norm.bias",
    ]);
  });

  it("ignores everything outside the component's prefix", () => {
    const shapes = new Map<string, number[]>([
      ["model_ema.decay", []],
      ["alphas_cumprod", [1000]],
      ["first_stage_model.loss.logvar", []],
      ["first_stage_model.quant_conv.weight", [8, 8, 1, 1]],
    ]);
    expect([...mapLdmShapes("vae", shapes, "t").keys()]).toEqual(["quant_conv.weight"]);
    expect([...mapLdmShapes("unet", shapes, "t").keys()]).toEqual([]);
  });

  it("names the file and key of a tensor with no diffusers counterpart", () => {
    const bad = ["model.diffusion_model.input_blocks.1.0.in_layers.0.weight", "model.diffusion_model.input_blocks.1.5.foo.weight"];
    expect(() => mapLdmNames("unet", bad, "odd.safetensors")).toThrow(CheckpointError);
    expect(() => mapLdmNames("unet", bad, "odd.safetensors")).toThrow(/odd\.safetensors: "model\.diffusion_model\.input_blocks\.1\.5\.foo\.weight" has no counterpart/);
    expect(() => mapLdmNames("vae", ["first_stage_model.encoder.mid.attn_1.qkv.weight"], "odd.safetensors")).toThrow(/attn_1\.qkv\.weight/);
  });
});
