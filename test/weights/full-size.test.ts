import { afterAll, describe, expect, it } from "vitest";
import { statSync } from "node:fs";
import { SD21, SDXL_BASE, SDXL_REFINER } from "../../src/configs/pipeline.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { SD21_SPEC, SDXL_REFINER_SPEC, SDXL_SPEC, sparseCheckpoint } from "./ldm-headers.js";
import { removeTempDirs } from "./safetensors-writer.js";

afterAll(removeTempDirs);

/** SD2's v-prediction probe (ComfyUI): output_blocks.11.1.transformer_blocks.0.norm1.bias with this spread. */
const probe = (std: number) => ({
  "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias": Array.from({ length: 1280 }, (_, i) =>
    i % 2 ? std : -std,
  ),
});

describe("full-size single files in the published layouts (sparse files, headers only)", () => {
  it("opens SD 2.1 768-v as v-prediction at 768 px and 512-base as epsilon at 512 px, with --prediction over both", () => {
    const v = sparseCheckpoint(SD21_SPEC, probe(0.125));
    const eps = sparseCheckpoint(SD21_SPEC, probe(0.03125));
    expect(statSync(v).size).toBeGreaterThan(2e9);
    const a = openCheckpoint(v);
    expect(a.config).toEqual(SD21);
    expect(a.config.unet.sampleSize * 8).toBe(768);
    // 23 of the 24 stored OpenCLIP blocks, without text_projection: SD2.1's published text encoder.
    expect(a.components.textEncoder.parameters).toBe(340_387_840);
    expect(a.components.unet.parameters).toBe(865_910_724);
    expect(a.textEncoderFolders).toEqual(["text_encoder"]);
    a.close();
    const b = openCheckpoint(eps);
    expect(b.config.predictionType).toBe("epsilon");
    expect(b.config.unet.sampleSize * 8).toBe(512);
    b.close();
    const c = openCheckpoint(eps, { prediction: "v_prediction" });
    expect(c.config.predictionType).toBe("v_prediction");
    expect(c.config.unet.sampleSize * 8).toBe(768);
    c.close();
    const d = openCheckpoint(v, { prediction: "epsilon" });
    expect(d.config.predictionType).toBe("epsilon");
    d.close();
  });

  it("opens SDXL base with both text encoders and the refiner with its one, at their published parameter counts", () => {
    const base = openCheckpoint(sparseCheckpoint(SDXL_SPEC));
    expect(base.config).toEqual(SDXL_BASE);
    expect(base.textEncoderFolders).toEqual(["text_encoder", "text_encoder_2"]);
    expect(base.components.unet.parameters).toBe(2_567_463_684);
    expect(base.components.textEncoder.parameters).toBe(123_060_480);
    expect(base.components.textEncoder2?.parameters).toBe(694_659_840);
    expect(base.components.vae.parameters).toBe(83_653_863);
    expect(base.components.unet.dtype).toBe("F16");
    base.close();
    const refiner = openCheckpoint(sparseCheckpoint(SDXL_REFINER_SPEC));
    expect(refiner.config).toEqual(SDXL_REFINER);
    expect(refiner.textEncoderFolders).toEqual(["text_encoder_2"]);
    expect(refiner.components.textEncoder.parameters).toBe(694_659_840);
    expect(refiner.components.textEncoder2).toBeUndefined();
    refiner.close();
  });

  it("takes an SDXL file with a v_pred key as v-prediction (ComfyUI's marker), and --prediction over it", () => {
    const path = sparseCheckpoint(SDXL_SPEC, { v_pred: [] });
    const a = openCheckpoint(path);
    expect(a.config.predictionType).toBe("v_prediction");
    expect(a.config.unet.sampleSize).toBe(128);
    a.close();
    const b = openCheckpoint(path, { prediction: "epsilon" });
    expect(b.config.predictionType).toBe("epsilon");
    b.close();
  });
});
