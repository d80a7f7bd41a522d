import { afterEach, describe, expect, it, vi } from "vitest";
import { CheckpointError } from "../../src/errors.js";
import {
  ldmComponentWeights,
  ldmPart,
  mapLdmNames,
  mapLdmShapes,
  type Component,
} from "../../src/weights/ldm-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const sd1 = (c: Component) => ldmPart("sd1", c)!;

const FOLDER_FILES: Partial<Record<Component, string>> = {
  unet: "models/sd15-tiny/unet/diffusion_pytorch_model.safetensors",
  vae: "models/sd15-tiny/vae/diffusion_pytorch_model.safetensors",
  textEncoder: "models/sd15-tiny/text_encoder/model.safetensors",
};

describe.skipIf(!HAVE_REFERENCE)("LDM key map on sd15-tiny", () => {
  afterEach(() => vi.restoreAllMocks());

  for (const component of ["unet", "vae", "textEncoder"] as const) {
    it(`the single file's ${component} has the diffusers folder's key set, shapes and fp32 values`, () => {
      const single = SafetensorsFile.open(ref("models/sd15-tiny.ldm.safetensors"));
      const folderFile = SafetensorsFile.open(ref(FOLDER_FILES[component]!));
      const mapped = ldmComponentWeights(single, sd1(component));
      const folder = fileWeightSource(folderFile);
      expect(mapped.keys().sort()).toEqual(folder.keys().sort());
      let compared = 0;
      for (const k of folder.keys()) {
        expect(mapped.shape(k), k).toEqual(folder.shape(k));
        expect(mapped.dtype(k)).toBe("F16");
        const a = mapped.float32(k),
          b = folder.float32(k);
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
    const vae = ldmComponentWeights(single, sd1("vae"));
    expect(single.info("first_stage_model.decoder.mid.attn_1.q.weight").shape).toEqual([32, 32, 1, 1]);
    expect(vae.shape("decoder.mid_block.attentions.0.to_q.weight")).toEqual([32, 32]);
    expect(vae.shape("decoder.mid_block.attentions.0.to_out.0.weight")).toEqual([32, 32]);
    expect(vae.shape("decoder.mid_block.attentions.0.to_q.bias")).toEqual([32]);
    expect(vae.locate("decoder.up_blocks.0.upsamplers.0.conv.weight")).toContain(
      '"first_stage_model.decoder.up.3.upsample.conv.weight"',
    );
    expect(vae.locate("decoder.up_blocks.3.resnets.0.conv_shortcut.weight")).toContain(
      '"first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"',
    );
    single.close();
  });

  it("reads no tensor data until float32() is called", () => {
    const bytes = vi.spyOn(SafetensorsFile.prototype, "bytes");
    const single = SafetensorsFile.open(ref("models/sd15-tiny.ldm.safetensors"));
    const unet = ldmComponentWeights(single, sd1("unet"));
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
  /** The structure of an SD1.5 UNet's running indices: one key per block, the downsamplers and upsamplers where they sit. */
  function sd15Blocks(): string[] {
    const names: string[] = [];
    for (let i = 1; i <= 11; i++)
      names.push(`model.diffusion_model.input_blocks.${i}.0.${[3, 6, 9].includes(i) ? "op" : "in_layers.0"}.weight`);
    for (let i = 0; i <= 11; i++) names.push(`model.diffusion_model.output_blocks.${i}.0.in_layers.0.weight`);
    names.push(
      "model.diffusion_model.output_blocks.2.1.conv.weight",
      "model.diffusion_model.output_blocks.8.2.conv.weight",
    );
    return names;
  }

  it("places input, middle and output blocks by their running index", () => {
    const names = [
      ...sd15Blocks(),
      "model.diffusion_model.input_blocks.0.0.weight",
      "model.diffusion_model.input_blocks.2.1.proj_in.weight",
      "model.diffusion_model.input_blocks.4.0.skip_connection.bias",
      "model.diffusion_model.middle_block.2.emb_layers.1.weight",
      "model.diffusion_model.output_blocks.5.2.conv.weight",
      "model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn2.to_k.weight",
      "model.diffusion_model.out.2.bias",
      "model.diffusion_model.time_embed.2.weight",
    ];
    const mapped = new Map(
      mapLdmNames(sd1("unet"), names, "t").map((m) => [m.stored.replace("model.diffusion_model.", ""), m.name]),
    );
    expect(Object.fromEntries([...mapped].filter(([k]) => !/in_layers\.0\.weight$/.test(k)))).toEqual({
      "input_blocks.3.0.op.weight": "down_blocks.0.downsamplers.0.conv.weight",
      "input_blocks.6.0.op.weight": "down_blocks.1.downsamplers.0.conv.weight",
      "input_blocks.9.0.op.weight": "down_blocks.2.downsamplers.0.conv.weight",
      "output_blocks.2.1.conv.weight": "up_blocks.0.upsamplers.0.conv.weight",
      "output_blocks.8.2.conv.weight": "up_blocks.2.upsamplers.0.conv.weight",
      "input_blocks.0.0.weight": "conv_in.weight",
      "input_blocks.2.1.proj_in.weight": "down_blocks.0.attentions.1.proj_in.weight",
      "input_blocks.4.0.skip_connection.bias": "down_blocks.1.resnets.0.conv_shortcut.bias",
      "middle_block.2.emb_layers.1.weight": "mid_block.resnets.1.time_emb_proj.weight",
      "output_blocks.5.2.conv.weight": "up_blocks.1.upsamplers.0.conv.weight",
      "output_blocks.5.1.transformer_blocks.0.attn2.to_k.weight":
        "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight",
      "out.2.bias": "conv_out.bias",
      "time_embed.2.weight": "time_embedding.linear_2.weight",
    });
    expect(mapped.get("input_blocks.11.0.in_layers.0.weight")).toBe("down_blocks.3.resnets.1.norm1.weight");
    expect(mapped.get("output_blocks.11.0.in_layers.0.weight")).toBe("up_blocks.3.resnets.2.norm1.weight");
  });

  it("places the blocks of a UNet with one ResNet per down level (BK-SDM) by the downsamplers and upsamplers it has", () => {
    // Levels of 1 layer + downsampler: input 1 (level 0), 2 (down), 3 (level 1), 4 (down), 5 (level 2), 6 (down), 7 (level 3);
    // up levels of 2 layers, the upsampler in each level's last block.
    const names = [
      ...[1, 3, 5, 7].map((i) => `model.diffusion_model.input_blocks.${i}.0.in_layers.0.weight`),
      ...[2, 4, 6].map((i) => `model.diffusion_model.input_blocks.${i}.0.op.weight`),
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `model.diffusion_model.output_blocks.${i}.0.in_layers.0.weight`),
      "model.diffusion_model.output_blocks.1.1.conv.weight",
      "model.diffusion_model.output_blocks.3.2.conv.weight",
      "model.diffusion_model.output_blocks.5.2.conv.weight",
      "model.diffusion_model.output_blocks.3.1.proj_in.weight",
    ];
    const mapped = new Map(
      mapLdmNames(sd1("unet"), names, "t").map((m) => [m.stored.replace("model.diffusion_model.", ""), m.name]),
    );
    expect(mapped.get("input_blocks.5.0.in_layers.0.weight")).toBe("down_blocks.2.resnets.0.norm1.weight");
    expect(mapped.get("input_blocks.6.0.op.weight")).toBe("down_blocks.2.downsamplers.0.conv.weight");
    expect(mapped.get("input_blocks.7.0.in_layers.0.weight")).toBe("down_blocks.3.resnets.0.norm1.weight");
    expect(mapped.get("output_blocks.3.1.proj_in.weight")).toBe("up_blocks.1.attentions.1.proj_in.weight");
    expect(mapped.get("output_blocks.3.2.conv.weight")).toBe("up_blocks.1.upsamplers.0.conv.weight");
    expect(mapped.get("output_blocks.7.0.in_layers.0.weight")).toBe("up_blocks.3.resnets.1.norm1.weight");
  });

  it("refuses running indices with a gap, naming the missing block", () => {
    const names = sd15Blocks().filter((n) => !n.includes("input_blocks.4."));
    expect(() => mapLdmNames(sd1("unet"), names, "gap.safetensors")).toThrow(
      /gap\.safetensors: model\.diffusion_model\.input_blocks\.4\.\* is missing/,
    );
  });

  it("maps SDXL's label_emb and LCM's cond_proj (stored under its diffusers name)", () => {
    const names = [
      "model.diffusion_model.label_emb.0.0.weight",
      "model.diffusion_model.label_emb.0.2.bias",
      "model.diffusion_model.time_embedding.cond_proj.weight",
    ];
    expect(mapLdmNames(sd1("unet"), names, "t").map((m) => m.name)).toEqual([
      "add_embedding.linear_1.weight",
      "add_embedding.linear_2.bias",
      "time_embedding.cond_proj.weight",
    ]);
  });

  it("splits OpenCLIP's fused attention projection into q, k and v, transposes text_projection and drops logit_scale", () => {
    const part = ldmPart("sd2", "textEncoder")!;
    const shapes = new Map<string, number[]>([
      ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", [12, 4]],
      ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias", [12]],
      ["cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight", [8, 4]],
      ["cond_stage_model.model.positional_embedding", [77, 4]],
      ["cond_stage_model.model.text_projection", [4, 3]],
      ["cond_stage_model.model.logit_scale", []],
    ]);
    expect(Object.fromEntries(mapLdmShapes(part, shapes, "t"))).toEqual({
      "text_model.encoder.layers.0.self_attn.q_proj.weight": [4, 4],
      "text_model.encoder.layers.0.self_attn.k_proj.weight": [4, 4],
      "text_model.encoder.layers.0.self_attn.v_proj.weight": [4, 4],
      "text_model.encoder.layers.0.self_attn.q_proj.bias": [4],
      "text_model.encoder.layers.0.self_attn.k_proj.bias": [4],
      "text_model.encoder.layers.0.self_attn.v_proj.bias": [4],
      "text_model.encoder.layers.0.mlp.fc1.weight": [8, 4],
      "text_model.embeddings.position_embedding.weight": [77, 4],
      "text_projection.weight": [3, 4],
    });
    expect(() =>
      mapLdmShapes(
        part,
        new Map([["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", [10, 4]]]),
        "odd.safetensors",
      ),
    ).toThrow(
      /odd\.safetensors: "cond_stage_model\.model\.transformer\.resblocks\.0\.attn\.in_proj_weight" has shape \[10,4\], which does not split into 3/,
    );
  });

  it("accepts text encoders saved without the text_model. level and drops position_ids", () => {
    const shapes = new Map<string, number[]>([
      ["cond_stage_model.transformer.embeddings.token_embedding.weight", [10, 4]],
      ["cond_stage_model.transformer.embeddings.position_ids", [1, 77]],
      ["cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight", [8, 4]],
      ["cond_stage_model.transformer.final_layer_norm.bias", [4]],
    ]);
    expect([...mapLdmShapes(sd1("textEncoder"), shapes, "t").keys()]).toEqual([
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
    expect([...mapLdmShapes(sd1("vae"), shapes, "t").keys()]).toEqual(["quant_conv.weight"]);
    expect([...mapLdmShapes(sd1("unet"), shapes, "t").keys()]).toEqual([]);
  });

  it("names the file and key of a tensor with no diffusers counterpart", () => {
    const bad = [
      "model.diffusion_model.input_blocks.1.0.in_layers.0.weight",
      "model.diffusion_model.input_blocks.1.5.foo.weight",
    ];
    expect(() => mapLdmNames(sd1("unet"), bad, "odd.safetensors")).toThrow(CheckpointError);
    expect(() => mapLdmNames(sd1("unet"), bad, "odd.safetensors")).toThrow(
      /odd\.safetensors: "model\.diffusion_model\.input_blocks\.1\.5\.foo\.weight" has no counterpart/,
    );
    expect(() =>
      mapLdmNames(sd1("vae"), ["first_stage_model.encoder.mid.attn_1.qkv.weight"], "odd.safetensors"),
    ).toThrow(/attn_1\.qkv\.weight/);
  });
});
