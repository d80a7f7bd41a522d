import { clipTextParamShapes, paramCount, unetParamShapes, vaeParamShapes } from "../../src/models/param-shapes.js";
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { CheckpointError, UnsupportedModelError } from "../../src/errors.js";
import { SD15 } from "../../src/configs/pipeline.js";
import { textEncoderConfigFromTransformers } from "../../src/configs/text-encoder.js";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { vaeConfigFromDiffusers } from "../../src/configs/vae.js";
import {
  detectDiffusersFamily,
  detectLdmCheckpoint,
} from "../../src/weights/detect.js";
import { mapLdmShapes } from "../../src/weights/ldm-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { countUnder, SD15_PARAMETERS, sd15LdmShapes } from "./sd15-ldm-header.js";

function headerShapes(path: string): Map<string, readonly number[]> {
  const f = SafetensorsFile.open(path);
  const shapes = new Map([...f.tensors].map(([k, t]) => [k, t.shape] as const));
  f.close();
  return shapes;
}

const json = (path: string) => JSON.parse(readFileSync(ref(path), "utf8")) as Record<string, unknown>;

describe("detection on SD1.5's real key names and shapes", () => {
  const shapes = sd15LdmShapes();

  it("the synthetic header has SD1.5's published parameter counts", () => {
    expect(countUnder(shapes, "model.diffusion_model.")).toBe(SD15_PARAMETERS.unet);
    expect(countUnder(shapes, "first_stage_model.")).toBe(SD15_PARAMETERS.vae);
    expect(countUnder(shapes, "cond_stage_model.transformer.", /position_ids$/)).toBe(SD15_PARAMETERS.textEncoder);
  });

  it("derives exactly the SD1.5 config", () => {
    const d = detectLdmCheckpoint(shapes, "sd15.safetensors");
    expect(d.family).toBe("sd1");
    expect(d.inpainting).toBe(false);
    expect(d.standardSizes).toBe(true);
    expect(d.config).toEqual(SD15);
  });

  it("maps every tensor to the diffusers name and shape that the SD1.5 config implies", () => {
    const expected = { unet: unetParamShapes(SD15.unet), vae: vaeParamShapes(SD15.vae), textEncoder: clipTextParamShapes(SD15.textEncoder) };
    for (const c of ["unet", "vae", "textEncoder"] as const) {
      const mapped = mapLdmShapes(c, shapes, "sd15.safetensors");
      expect([...mapped.keys()].sort()).toEqual([...expected[c].keys()].sort());
      for (const [k, s] of expected[c]) expect(mapped.get(k), k).toEqual(s);
    }
    expect(paramCount(expected.unet)).toBe(SD15_PARAMETERS.unet);
    expect(paramCount(expected.vae)).toBe(SD15_PARAMETERS.vae);
    expect(paramCount(expected.textEncoder)).toBe(SD15_PARAMETERS.textEncoder);
    expect(expected.unet.size).toBe(686);
  });

  it("recognises the inpainting variant by its 9 input channels", () => {
    const d = detectLdmCheckpoint(sd15LdmShapes(9), "sd15-inpainting.safetensors");
    expect(d.inpainting).toBe(true);
    expect(d.config).toEqual({ ...SD15, unet: { ...SD15.unet, inChannels: 9 } });
  });

  it("refuses other input channel counts with UnsupportedModelError", () => {
    expect(() => detectLdmCheckpoint(sd15LdmShapes(8), "ip2p.safetensors")).toThrow(/ip2p\.safetensors.*8 input channels.*InstructPix2Pix/);
  });

  it("calls an SD1-layout file with 1024-wide cross-attention SD2 and refuses it", () => {
    const s = new Map(shapes);
    s.set("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", [320, 1024]);
    expect(() => detectLdmCheckpoint(s, "x.safetensors")).toThrow(UnsupportedModelError);
    expect(() => detectLdmCheckpoint(s, "x.safetensors")).toThrow(/2\.x.*SD2\/SDXL support is planned; use an SD1\.x checkpoint/);
  });

  it("names LoRAs, standalone VAEs and diffusers component files instead of guessing", () => {
    const lora = new Map([["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [4, 320]]]);
    expect(() => detectLdmCheckpoint(lora, "l.safetensors")).toThrow(/l\.safetensors: this looks like a LoRA/);
    const vaeOnly = new Map([["encoder.conv_in.weight", [128, 3, 3, 3]], ["decoder.conv_in.weight", [512, 4, 3, 3]]]);
    expect(() => detectLdmCheckpoint(vaeOnly, "v.safetensors")).toThrow(/standalone VAE/);
    const component = new Map([["conv_in.weight", [320, 4, 3, 3]]]);
    expect(() => detectLdmCheckpoint(component, "u.safetensors")).toThrow(/diffusers folder/);
    expect(() => detectLdmCheckpoint(new Map(), "e.safetensors")).toThrow(CheckpointError);
  });

  it("refuses a single file missing its VAE or text encoder", () => {
    const noVae = new Map([...shapes].filter(([k]) => !k.startsWith("first_stage_model.")));
    expect(() => detectLdmCheckpoint(noVae, "n.safetensors")).toThrow(/n\.safetensors: no first_stage_model\.\* tensors/);
    const noText = new Map([...shapes].filter(([k]) => !k.startsWith("cond_stage_model.")));
    expect(() => detectLdmCheckpoint(noText, "n.safetensors")).toThrow(/no text encoder/);
  });

  it("a missing tensor that detection needs names the file and the tensor", () => {
    const s = new Map(shapes);
    s.delete("model.diffusion_model.out.2.weight");
    expect(() => detectLdmCheckpoint(s, "cut.safetensors")).toThrow(/cut\.safetensors.*missing tensor "conv_out\.weight"/);
  });
});

describe.skipIf(!HAVE_REFERENCE)("detection on the tiny models", () => {
  it("reads from sd15-tiny's shapes every config value that shapes can show", () => {
    const d = detectLdmCheckpoint(headerShapes(ref("models/sd15-tiny.ldm.safetensors")), "sd15-tiny");
    const unet = unetConfigFromDiffusers(json("models/sd15-tiny/unet/config.json"));
    const vae = vaeConfigFromDiffusers(json("models/sd15-tiny/vae/config.json"));
    const text = textEncoderConfigFromTransformers(json("models/sd15-tiny/text_encoder/config.json"));
    expect(d.family).toBe("sd1");
    expect(d.standardSizes).toBe(false);
    const u = d.config.unet;
    for (const k of ["inChannels", "outChannels", "blockOutChannels", "downBlockTypes", "upBlockTypes", "layersPerBlock", "crossAttentionDim",
      "downTransformerLayers", "upTransformerLayers", "midBlockType", "useLinearProjection"] as const) expect(u[k], k).toEqual(unet[k]);
    const v = d.config.vae;
    for (const k of ["inChannels", "outChannels", "latentChannels", "blockOutChannels", "layersPerBlock", "useQuantConv", "usePostQuantConv",
      "midBlockAddAttention"] as const) expect(v[k], k).toEqual(vae[k]);
    const t = d.config.textEncoder;
    for (const k of ["vocabSize", "hiddenSize", "intermediateSize", "numHiddenLayers", "maxPositionEmbeddings"] as const) expect(t[k], k).toEqual(text[k]);
  });

  it("refuses the SD2 and SDXL single files with UnsupportedModelError", () => {
    for (const [name, family] of [["sd2v-tiny", "Stable Diffusion 2.x"], ["sdxl-tiny", "Stable Diffusion XL"]] as const) {
      const path = ref(`models/${name}.ldm.safetensors`);
      let error: unknown;
      try {
        detectLdmCheckpoint(headerShapes(path), path);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(UnsupportedModelError);
      expect((error as Error).message).toContain(path);
      expect((error as Error).message).toContain(family);
      expect((error as Error).message).toContain("SD2/SDXL support is planned; use an SD1.x checkpoint");
    }
  });

  it("tells the family of each tiny diffusers folder from its configs", () => {
    const family = (m: string, te = "text_encoder") =>
      detectDiffusersFamily(json(`models/${m}/model_index.json`), json(`models/${m}/unet/config.json`), json(`models/${m}/${te}/config.json`)).family;
    expect(family("sd15-tiny")).toBe("sd1");
    expect(family("sd2v-tiny")).toBe("sd2");
    expect(family("sdxl-tiny")).toBe("sdxl");
  });
});
