import { describe, expect, it } from "vitest";
import { SD15, SD21, SDXL_BASE, SDXL_REFINER, type PipelineConfig } from "../../src/configs/pipeline.js";
import { clipTextParamShapes, unetParamShapes, vaeParamShapes } from "../../src/models/param-shapes.js";
import { openCheckpointFiles, type Checkpoint } from "../../src/weights/checkpoint.js";
import { LDM_PARTS, type CheckpointComponent } from "../../src/weights/ldm-keymap.js";
import { ldmStoredTensors, storedTensorData } from "../../src/weights/ldm-keymap-reverse.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { ldmShapes, SD15_SPEC, SD21_SPEC, SDXL_REFINER_SPEC, SDXL_SPEC, type CheckpointSpec } from "./ldm-headers.js";

function componentShapes(config: PipelineConfig, c: CheckpointComponent): ReadonlyMap<string, readonly number[]> {
  switch (c) {
    case "unet":
      return unetParamShapes(config.unet);
    case "vae":
      return vaeParamShapes(config.vae);
    case "textEncoder":
      return clipTextParamShapes(config.textEncoder);
    case "textEncoder2":
      return clipTextParamShapes(config.textEncoder2!);
  }
}

const FULL_SIZE: readonly { name: string; config: PipelineConfig; spec: CheckpointSpec; unused: RegExp }[] = [
  // position_ids and logit_scale are buffers, not parameters; SD2 files store OpenCLIP ViT-H whole, with a 24th
  // block and a text_projection that SD2 never runs (the config has 23 layers and no projection).
  { name: "SD 1.5", config: SD15, spec: SD15_SPEC, unused: /position_ids$/ },
  { name: "SD 2.1", config: SD21, spec: SD21_SPEC, unused: /logit_scale$|resblocks\.23\.|text_projection$/ },
  { name: "SDXL base", config: SDXL_BASE, spec: SDXL_SPEC, unused: /position_ids$|logit_scale$/ },
  { name: "SDXL refiner", config: SDXL_REFINER, spec: SDXL_REFINER_SPEC, unused: /logit_scale$/ },
];

describe("reverse LDM key map", () => {
  for (const f of FULL_SIZE) {
    it(`writes ${f.name}'s parameters under the published single file's names and shapes`, () => {
      const published = ldmShapes(f.spec);
      for (const part of LDM_PARTS[f.config.family]) {
        const stored = ldmStoredTensors(part, componentShapes(f.config, part.component));
        const want = [...published].filter(([k]) => k.startsWith(part.prefix) && !f.unused.test(k));
        expect(new Map(stored.map((t) => [t.stored, [...t.shape]])), part.prefix).toEqual(new Map(want));
      }
    });
  }

  it("stacks OpenCLIP's q, k and v into in_proj in that order, transposes text_projection and gives the VAE attention 1x1 convolutions", () => {
    const bigG = ldmStoredTensors(LDM_PARTS.sdxl[3]!, clipTextParamShapes(SDXL_BASE.textEncoder2!));
    const inProj = bigG.find(
      (t) => t.stored === "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
    )!;
    expect(inProj.shape).toEqual([3840, 1280]);
    expect(inProj.parts.map((p) => p.name)).toEqual(
      ["q", "k", "v"].map((x) => `text_model.encoder.layers.0.self_attn.${x}_proj.weight`),
    );
    const vae = ldmStoredTensors(LDM_PARTS.sd1[1]!, vaeParamShapes(SD15.vae));
    expect(vae.find((t) => t.stored === "first_stage_model.decoder.mid.attn_1.proj_out.weight")!.shape).toEqual([
      512, 512, 1, 1,
    ]);
    expect(
      vae.find((t) => t.stored === "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight")!.parts[0]!.name,
    ).toBe("decoder.up_blocks.3.resnets.0.conv_shortcut.weight");
  });

  it("refuses a name the part has no original-layout name for", () => {
    expect(() => ldmStoredTensors(LDM_PARTS.sd1[2]!, new Map([["text_projection.weight", [768, 768]]]))).toThrow(
      /"text_projection.weight" has no name in the original layout of cond_stage_model.transformer./,
    );
  });
});

describe.skipIf(!HAVE_REFERENCE)("reverse LDM key map on the tiny reference models", () => {
  // The fixtures' single files were written by diffusers' own diffusers->original conversion scripts.
  for (const model of ["sd15-tiny", "sd2v-tiny", "sdxl-tiny", "lcm-tiny"]) {
    it(`${model}: the diffusers folder's tensors written back give the single file's names, shapes and fp16-exact values`, () => {
      const ckpt: Checkpoint = openCheckpointFiles(ref(`models/${model}`));
      const single = SafetensorsFile.open(ref(`models/${model}.ldm.safetensors`));
      try {
        // The SD2 file carries an unused text_projection, as real SD2 files do.
        const published = single
          .keys()
          .filter((k) => !(model === "sd2v-tiny" && k === "cond_stage_model.model.text_projection"));
        const written: string[] = [];
        for (const part of LDM_PARTS[ckpt.config.family]) {
          const source = ckpt[part.component]!;
          const stored = ldmStoredTensors(part, new Map(source.keys().map((k) => [k, source.shape(k)])));
          for (const t of stored) {
            expect(t.shape, t.stored).toEqual(single.info(t.stored).shape);
            const data = storedTensorData(t, source);
            expect(Buffer.from(data.buffer).equals(Buffer.from(single.float32(t.stored).buffer)), t.stored).toBe(true);
            written.push(t.stored);
          }
        }
        expect(written.sort()).toEqual(published.sort());
      } finally {
        single.close();
        ckpt.close();
      }
    });
  }
});
