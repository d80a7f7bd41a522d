import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { SD15 } from "../../src/configs/pipeline.js";
import { textEncoderConfigFromTransformers } from "../../src/configs/text-encoder.js";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { vaeConfigFromDiffusers } from "../../src/configs/vae.js";
import { visionConfigFromTransformers } from "../../src/configs/vision.js";
import { clipTextParamShapes, clipVisionParamShapes, paramCount, unetParamShapes, vaeParamShapes, type ParamShapes } from "../../src/models/param-shapes.js";
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

  it.skipIf(!HAVE_REFERENCE)("list exactly the keys and shapes of the sd15-tiny diffusers files", () => {
    const cfg = (c: string) => JSON.parse(readFileSync(ref(`models/sd15-tiny/${c}/config.json`), "utf8"));
    const cases: [ParamShapes, string][] = [
      [unetParamShapes(unetConfigFromDiffusers(cfg("unet"))), "models/sd15-tiny/unet/diffusion_pytorch_model.safetensors"],
      [vaeParamShapes(vaeConfigFromDiffusers(cfg("vae"))), "models/sd15-tiny/vae/diffusion_pytorch_model.safetensors"],
      [clipTextParamShapes(textEncoderConfigFromTransformers(cfg("text_encoder"))), "models/sd15-tiny/text_encoder/model.safetensors"],
    ];
    for (const [shapes, file] of cases) {
      const actual = shapesOf(ref(file));
      delete actual["text_model.embeddings.position_ids"]; // a buffer some exports keep; not a parameter
      expect(Object.fromEntries(shapes)).toEqual(actual);
    }
  });

  it.skipIf(!HAVE_REFERENCE)("list exactly the vision tower and projection of the tiny safety checker", () => {
    const config = visionConfigFromTransformers(JSON.parse(readFileSync(ref("models/safety-tiny/safety_checker/config.json"), "utf8")));
    const actual = shapesOf(ref("models/safety-tiny/safety_checker/model.safetensors"));
    for (const k of ["concept_embeds", "concept_embeds_weights", "special_care_embeds", "special_care_embeds_weights"]) delete actual[k];
    expect(Object.fromEntries(clipVisionParamShapes(config, { prefix: "vision_model.vision_model", projection: true }))).toEqual(actual);
  });
});
