import { clipTextParamShapes, paramCount, unetParamShapes, vaeParamShapes } from "../../src/models/param-shapes.js";
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { CheckpointError } from "../../src/errors.js";
import { SD15, SD21, SDXL_BASE, SDXL_REFINER, type PipelineConfig } from "../../src/configs/pipeline.js";
import { textEncoderConfigFromTransformers } from "../../src/configs/text-encoder.js";
import { unetConfigFromDiffusers, type UNetConfig } from "../../src/configs/unet.js";
import { vaeConfigFromDiffusers } from "../../src/configs/vae.js";
import {
  detectDiffusersFamily,
  detectLdmCheckpoint,
  predictionDefaults,
  sd2PredictionFromProbe,
  sd2PredictionProbe,
  unetConfigFromShapes,
  unusedTextTensor,
} from "../../src/weights/detect.js";
import { ldmPart, mapLdmShapes } from "../../src/weights/ldm-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import {
  countUnder,
  ldmShapes,
  SD15_PARAMETERS,
  SD15_SPEC,
  sd15LdmShapes,
  SD21_SPEC,
  SDXL_REFINER_SPEC,
  SDXL_SPEC,
} from "./ldm-headers.js";

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
    const expected = {
      unet: unetParamShapes(SD15.unet),
      vae: vaeParamShapes(SD15.vae),
      textEncoder: clipTextParamShapes(SD15.textEncoder),
    };
    for (const c of ["unet", "vae", "textEncoder"] as const) {
      const mapped = mapLdmShapes(ldmPart("sd1", c)!, shapes, "sd15.safetensors");
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
    expect(() => detectLdmCheckpoint(sd15LdmShapes(8), "ip2p.safetensors")).toThrow(
      /ip2p\.safetensors.*8 input channels.*InstructPix2Pix/,
    );
  });

  it("calls an SD1-layout file with 1024-wide cross-attention SD2, and then asks for SD2's OpenCLIP text encoder", () => {
    const s = new Map(shapes);
    s.set("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", [320, 1024]);
    expect(() => detectLdmCheckpoint(s, "x.safetensors")).toThrow(CheckpointError);
    expect(() => detectLdmCheckpoint(s, "x.safetensors")).toThrow(
      /x\.safetensors: no cond_stage_model\.model\.\* tensors \(the text encoder\); a Stable Diffusion 2\.x single-file checkpoint/,
    );
  });

  it("names LoRAs, standalone VAEs and diffusers component files instead of guessing", () => {
    const lora = new Map([["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [4, 320]]]);
    expect(() => detectLdmCheckpoint(lora, "l.safetensors")).toThrow(/l\.safetensors: this looks like a LoRA/);
    const vaeOnly = new Map([
      ["encoder.conv_in.weight", [128, 3, 3, 3]],
      ["decoder.conv_in.weight", [512, 4, 3, 3]],
    ]);
    expect(() => detectLdmCheckpoint(vaeOnly, "v.safetensors")).toThrow(/standalone VAE/);
    const component = new Map([["conv_in.weight", [320, 4, 3, 3]]]);
    expect(() => detectLdmCheckpoint(component, "u.safetensors")).toThrow(/diffusers folder/);
    expect(() => detectLdmCheckpoint(new Map(), "e.safetensors")).toThrow(CheckpointError);
  });

  it("refuses a single file missing its VAE or text encoder", () => {
    const noVae = new Map([...shapes].filter(([k]) => !k.startsWith("first_stage_model.")));
    expect(() => detectLdmCheckpoint(noVae, "n.safetensors")).toThrow(
      /n\.safetensors: no first_stage_model\.\* tensors/,
    );
    const noText = new Map([...shapes].filter(([k]) => !k.startsWith("cond_stage_model.")));
    expect(() => detectLdmCheckpoint(noText, "n.safetensors")).toThrow(/has a UNet but no text encoder/);
  });

  it("a missing tensor that detection needs names the file and the tensor", () => {
    const s = new Map(shapes);
    s.delete("model.diffusion_model.out.2.weight");
    expect(() => detectLdmCheckpoint(s, "cut.safetensors")).toThrow(
      /cut\.safetensors.*missing tensor "conv_out\.weight"/,
    );
  });
});

/** Every component of a detected single file mapped to diffusers names, less what the pipeline never uses. */
function expectTensorsOf(shapes: Map<string, number[]>, config: PipelineConfig): void {
  const expected = {
    unet: unetParamShapes(config.unet),
    vae: vaeParamShapes(config.vae),
    textEncoder: clipTextParamShapes(config.textEncoder),
    ...(config.textEncoder2 ? { textEncoder2: clipTextParamShapes(config.textEncoder2) } : {}),
  };
  for (const [c, want] of Object.entries(expected) as [keyof typeof expected, Map<string, readonly number[]>][]) {
    const part = ldmPart(config.family, c)!;
    const all = mapLdmShapes(part, shapes, "x");
    const text = c === "textEncoder" ? config.textEncoder : config.textEncoder2;
    const unused = part.layout === "open-clip" ? unusedTextTensor(config.family, text!, [...all.keys()]) : () => false;
    const mapped = new Map([...all].filter(([k]) => !unused(k)));
    expect([...mapped.keys()].sort(), c).toEqual([...want.keys()].sort());
    for (const [k, s] of want) expect(mapped.get(k), k).toEqual(s);
  }
}

describe("detection on SD 2.1's and SDXL's real key names and shapes", () => {
  it("the synthetic headers have the published parameter counts (SD 2.1 UNet 865.91M; SDXL UNet 2567.46M, CLIP-L 123.06M, bigG 694.66M)", () => {
    const sd21 = ldmShapes(SD21_SPEC),
      sdxl = ldmShapes(SDXL_SPEC);
    expect(countUnder(sd21, "model.diffusion_model.")).toBe(865_910_724);
    expect(countUnder(sdxl, "model.diffusion_model.")).toBe(2_567_463_684);
    expect(countUnder(sdxl, "conditioner.embedders.0.transformer.", /position_ids$/)).toBe(123_060_480);
    expect(countUnder(sdxl, "conditioner.embedders.1.model.", /logit_scale$/)).toBe(694_659_840);
    expect(countUnder(sdxl, "first_stage_model.")).toBe(83_653_863);
  });

  it("derives exactly the SD 2.1 (768-v once the prediction is known), SDXL base and SDXL refiner configs", () => {
    const sd21 = detectLdmCheckpoint(ldmShapes(SD21_SPEC), "sd21.safetensors");
    expect(sd21.family).toBe("sd2");
    expect(sd21.standardSizes).toBe(true);
    // From shapes alone SD2 is epsilon at 512 px; the weights' values decide (checkpoint.ts), and then it is SD21.
    expect(sd21.config.predictionType).toBe("epsilon");
    expect(sd21.config.unet.sampleSize).toBe(64);
    expect(predictionDefaults(sd21.config, "v_prediction")).toEqual(SD21);
    const sdxl = detectLdmCheckpoint(ldmShapes(SDXL_SPEC), "sdxl.safetensors");
    expect(sdxl.family).toBe("sdxl");
    expect(sdxl.standardSizes).toBe(true);
    expect(sdxl.config).toEqual(SDXL_BASE);
    const refiner = detectLdmCheckpoint(ldmShapes(SDXL_REFINER_SPEC), "refiner.safetensors");
    expect(refiner.family).toBe("sdxl-refiner");
    expect(refiner.standardSizes).toBe(true);
    expect(refiner.config).toEqual(SDXL_REFINER);
  });

  it("maps every tensor to the diffusers name and shape the config implies, leaving out SD2's unused 24th text block and projection", () => {
    expectTensorsOf(ldmShapes(SD21_SPEC), SD21);
    expectTensorsOf(ldmShapes(SDXL_SPEC), SDXL_BASE);
    expectTensorsOf(ldmShapes(SDXL_REFINER_SPEC), SDXL_REFINER);
    const names = [...mapLdmShapes(ldmPart("sd2", "textEncoder")!, ldmShapes(SD21_SPEC), "x").keys()];
    const unused = names.filter(unusedTextTensor("sd2", SD21.textEncoder, names));
    expect(unused).toContain("text_projection.weight");
    expect(unused).toContain("text_model.encoder.layers.23.mlp.fc2.weight");
    expect(unused.filter((k) => !k.startsWith("text_model.encoder.layers.23."))).toEqual(["text_projection.weight"]);
  });

  it("recognises inpainting UNets of every family by their 9 input channels", () => {
    for (const [spec, config] of [
      [SD15_SPEC, SD15],
      [SD21_SPEC, SD21],
      [SDXL_SPEC, SDXL_BASE],
    ] as const) {
      const d = detectLdmCheckpoint(ldmShapes(spec, 9), "inpaint.safetensors");
      expect(d.inpainting).toBe(true);
      expect(d.config.unet.inChannels).toBe(9);
      expect(d.family).toBe(config.family);
    }
    // SD2 inpainting models are epsilon models: there is no v-prediction probe for them.
    expect(sd2PredictionProbe({ ...SD21.unet, inChannels: 9 })).toBeUndefined();
  });

  it("tells SD2 v-prediction from epsilon by the spread of the last attention's norm1 bias (ComfyUI's rule)", () => {
    expect(sd2PredictionProbe(SD21.unet)).toBe("up_blocks.3.attentions.2.transformer_blocks.0.norm1.bias");
    const spread = (std: number) => Float32Array.from({ length: 1280 }, (_, i) => (i % 2 ? std : -std));
    expect(sd2PredictionFromProbe(spread(0.12))).toBe("v_prediction");
    expect(sd2PredictionFromProbe(spread(0.05))).toBe("epsilon");
    expect(predictionDefaults({ ...SD21, predictionType: "epsilon" }, "epsilon").unet.sampleSize).toBe(64);
  });

  it("reads distilled UNets' blocks and depths from the weights: fewer ResNets and no mid block (BK-SDM), depths per block (SSD-1B, Segmind Vega)", () => {
    const bk: UNetConfig = {
      ...SD15.unet,
      blockOutChannels: [320, 640, 1280],
      downBlockTypes: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
      upBlockTypes: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
      attentionHeads: [8, 8, 8],
      layersPerBlock: [1, 1, 1],
      downTransformerLayers: [[1], [1], [1]],
      upTransformerLayers: [
        [1, 1],
        [1, 1],
        [1, 1],
      ],
      midBlockType: null,
      midTransformerLayers: 0,
    };
    const ssd: UNetConfig = {
      ...SDXL_BASE.unet,
      downTransformerLayers: [
        [0, 0],
        [2, 2],
        [4, 4],
      ],
      upTransformerLayers: [
        [4, 4, 10],
        [1, 2, 2],
        [0, 0, 0],
      ],
      midTransformerLayers: 4,
    };
    const vegaLike: UNetConfig = { ...ssd, midBlockType: "UNetMidBlock2D", midTransformerLayers: 0 };
    expect(unetConfigFromShapes(unetParamShapes(bk), "bk", "sd1")).toEqual(bk);
    expect(unetConfigFromShapes(unetParamShapes(ssd), "ssd", "sdxl", 1280)).toEqual(ssd);
    expect(unetConfigFromShapes(unetParamShapes(vegaLike), "vega", "sdxl", 1280)).toEqual(vegaLike);
    expect(unetParamShapes(bk).has("mid_block.resnets.0.conv1.weight")).toBe(false);
    expect(unetParamShapes(ssd).has("up_blocks.0.attentions.2.transformer_blocks.9.ff.net.2.weight")).toBe(true);
    expect(unetParamShapes(ssd).has("up_blocks.0.attentions.0.transformer_blocks.4.ff.net.2.weight")).toBe(false);
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
    for (const k of [
      "inChannels",
      "outChannels",
      "blockOutChannels",
      "downBlockTypes",
      "upBlockTypes",
      "layersPerBlock",
      "crossAttentionDim",
      "downTransformerLayers",
      "upTransformerLayers",
      "midBlockType",
      "useLinearProjection",
    ] as const)
      expect(u[k], k).toEqual(unet[k]);
    const v = d.config.vae;
    for (const k of [
      "inChannels",
      "outChannels",
      "latentChannels",
      "blockOutChannels",
      "layersPerBlock",
      "useQuantConv",
      "usePostQuantConv",
      "midBlockAddAttention",
    ] as const)
      expect(v[k], k).toEqual(vae[k]);
    const t = d.config.textEncoder;
    for (const k of [
      "vocabSize",
      "hiddenSize",
      "intermediateSize",
      "numHiddenLayers",
      "maxPositionEmbeddings",
    ] as const)
      expect(t[k], k).toEqual(text[k]);
  });

  for (const [model, folders] of [
    ["sd2v-tiny", ["text_encoder"]],
    ["sdxl-tiny", ["text_encoder", "text_encoder_2"]],
    ["lcm-tiny", ["text_encoder"]],
  ] as const) {
    it(`reads from ${model}'s single file every config value that shapes can show`, () => {
      const d = detectLdmCheckpoint(headerShapes(ref(`models/${model}.ldm.safetensors`)), model);
      expect(d.family).toBe(model === "sdxl-tiny" ? "sdxl" : model === "sd2v-tiny" ? "sd2" : "sd1");
      expect(d.standardSizes).toBe(false);
      const unet = unetConfigFromDiffusers(json(`models/${model}/unet/config.json`));
      for (const k of [
        "inChannels",
        "outChannels",
        "blockOutChannels",
        "downBlockTypes",
        "upBlockTypes",
        "layersPerBlock",
        "crossAttentionDim",
        "downTransformerLayers",
        "upTransformerLayers",
        "midBlockType",
        "midTransformerLayers",
        "useLinearProjection",
        "additionEmbedType",
        "projectionClassEmbeddingsInputDim",
        "timeCondProjDim",
      ] as const) {
        expect(d.config.unet[k], k).toEqual(unet[k]);
      }
      const texts = [d.config.textEncoder, d.config.textEncoder2].filter(Boolean);
      expect(texts).toHaveLength(folders.length);
      folders.forEach((folder, i) => {
        const t = textEncoderConfigFromTransformers(json(`models/${model}/${folder}/config.json`));
        // SD2's single file holds its OpenCLIP tower whole, and SD2 runs all but the last block: a 3-block file is a
        // 2-layer encoder unless a config folder says otherwise (the tiny model's does; real files have 24 blocks for 23).
        const layers = model === "sd2v-tiny" ? t.numHiddenLayers - 1 : t.numHiddenLayers;
        for (const k of [
          "vocabSize",
          "hiddenSize",
          "intermediateSize",
          "maxPositionEmbeddings",
          "hiddenAct",
          "projectionDim",
        ] as const)
          expect(texts[i]![k], `${folder} ${k}`).toEqual(t[k]);
        expect(texts[i]!.numHiddenLayers).toBe(layers);
      });
    });
  }
  it("tells the family of each tiny diffusers folder from its configs", () => {
    const family = (m: string, te = "text_encoder") =>
      detectDiffusersFamily(
        json(`models/${m}/model_index.json`),
        json(`models/${m}/unet/config.json`),
        json(`models/${m}/${te}/config.json`),
      ).family;
    expect(family("sd15-tiny")).toBe("sd1");
    expect(family("sd2v-tiny")).toBe("sd2");
    expect(family("sdxl-tiny")).toBe("sdxl");
    expect(family("lcm-tiny")).toBe("sd1");
  });

  it("tells an SDXL refiner folder by its missing CLIP ViT-L or its aesthetic score", () => {
    const unet = json("models/sdxl-tiny/unet/config.json");
    const index = json("models/sdxl-tiny/model_index.json");
    const refiner = {
      ...index,
      _class_name: "StableDiffusionXLImg2ImgPipeline",
      text_encoder: [null, null],
      requires_aesthetics_score: true,
    };
    expect(detectDiffusersFamily(refiner, unet, undefined).family).toBe("sdxl-refiner");
    expect(detectDiffusersFamily({ ...index, requires_aesthetics_score: true }, unet, undefined).family).toBe(
      "sdxl-refiner",
    );
    expect(detectDiffusersFamily({ ...index, requires_aesthetics_score: false }, unet, undefined).family).toBe("sdxl");
  });
});
