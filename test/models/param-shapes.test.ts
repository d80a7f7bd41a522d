import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { SD15, SD21, SDXL_BASE, SDXL_REFINER } from "../../src/configs/pipeline.js";
import { textEncoderConfigFromTransformers } from "../../src/configs/text-encoder.js";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { vaeConfigFromDiffusers } from "../../src/configs/vae.js";
import { visionConfigFromTransformers } from "../../src/configs/vision.js";
import {
  clipTextParamShapes,
  clipVisionParamShapes,
  paramCount,
  unetParamShapes,
  vaeParamShapes,
  type ParamShapes,
} from "../../src/models/param-shapes.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

function shapesOf(path: string): Record<string, number[]> {
  const f = SafetensorsFile.open(path);
  const out: Record<string, number[]> = {};
  for (const k of f.keys()) out[k] = [...f.info(k).shape];
  f.close();
  return out;
}

describe("architecture parameter tables", () => {
  it("give the published SD1.5 parameter counts (UNet 859.52M, VAE 83.65M, CLIP text 123.06M)", () => {
    expect(paramCount(unetParamShapes(SD15.unet))).toBe(859_520_964);
    expect(paramCount(vaeParamShapes(SD15.vae))).toBe(83_653_863);
    expect(paramCount(clipTextParamShapes(SD15.textEncoder))).toBe(123_060_480);
  });

  // Published counts: SDXL base UNet 2,567,463,684 (diffusers' parameter count of stabilityai/stable-diffusion-xl-base-1.0),
  // CLIP ViT-L text model 123,060,480, OpenCLIP bigG with projection 694,659,840, VAE 83,653,863; SD 2.1 UNet 865,910,724
  // and its 23-layer OpenCLIP ViT-H text model 340,387,840; SDXL refiner UNet 2,259,526,660.
  it("give the published SDXL base, SDXL refiner and SD 2.1 parameter counts", () => {
    expect(paramCount(unetParamShapes(SDXL_BASE.unet))).toBe(2_567_463_684);
    expect(paramCount(clipTextParamShapes(SDXL_BASE.textEncoder))).toBe(123_060_480);
    expect(paramCount(clipTextParamShapes(SDXL_BASE.textEncoder2!))).toBe(694_659_840);
    expect(paramCount(vaeParamShapes(SDXL_BASE.vae))).toBe(83_653_863);
    expect(paramCount(unetParamShapes(SDXL_REFINER.unet))).toBe(2_259_526_660);
    expect(paramCount(clipTextParamShapes(SDXL_REFINER.textEncoder))).toBe(694_659_840);
    expect(paramCount(unetParamShapes(SD21.unet))).toBe(865_910_724);
    expect(paramCount(clipTextParamShapes(SD21.textEncoder))).toBe(340_387_840);
  });

  for (const [model, textEncoders] of [
    ["sd15-tiny", ["text_encoder"]],
    ["sd2v-tiny", ["text_encoder"]],
    ["sdxl-tiny", ["text_encoder", "text_encoder_2"]],
    ["lcm-tiny", ["text_encoder"]],
  ] as const) {
    it.skipIf(!HAVE_REFERENCE)(`list exactly the keys and shapes of the ${model} diffusers files`, () => {
      const cfg = (c: string) => JSON.parse(readFileSync(ref(`models/${model}/${c}/config.json`), "utf8"));
      const cases: [ParamShapes, string][] = [
        [
          unetParamShapes(unetConfigFromDiffusers(cfg("unet"))),
          `models/${model}/unet/diffusion_pytorch_model.safetensors`,
        ],
        [vaeParamShapes(vaeConfigFromDiffusers(cfg("vae"))), `models/${model}/vae/diffusion_pytorch_model.safetensors`],
        ...textEncoders.map((te): [ParamShapes, string] => [
          clipTextParamShapes(textEncoderConfigFromTransformers(cfg(te))),
          `models/${model}/${te}/model.safetensors`,
        ]),
      ];
      for (const [shapes, file] of cases) {
        const actual = shapesOf(ref(file));
        delete actual["text_model.embeddings.position_ids"]; // a buffer some exports keep; not a parameter
        expect(Object.fromEntries(shapes), file).toEqual(actual);
      }
    });
  }

  it.skipIf(!HAVE_REFERENCE)("list exactly the vision tower and projection of the tiny safety checker", () => {
    const config = visionConfigFromTransformers(
      JSON.parse(readFileSync(ref("models/safety-tiny/safety_checker/config.json"), "utf8")),
    );
    const actual = shapesOf(ref("models/safety-tiny/safety_checker/model.safetensors"));
    for (const k of ["concept_embeds", "concept_embeds_weights", "special_care_embeds", "special_care_embeds_weights"])
      delete actual[k];
    expect(
      Object.fromEntries(clipVisionParamShapes(config, { prefix: "vision_model.vision_model", projection: true })),
    ).toEqual(actual);
  });
});
