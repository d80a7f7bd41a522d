import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session, type FeedValue } from "../../src/runtime/session.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("UNet (sd15-tiny, diffusers folder)", () => {
  for (const attention of ["matmul", "ms-mha"] as const)
    it(`matches diffusers' output for timesteps 999, 287.5 and one per batch item (${attention} attention)`, async () => {
      const config = unetConfigFromDiffusers(
        JSON.parse(readFileSync(ref("models/sd15-tiny/unet/config.json"), "utf8")),
      );
      const file = SafetensorsFile.open(ref("models/sd15-tiny/unet/diffusion_pytorch_model.safetensors"));
      const session = await Session.create(
        serializeGraph(buildUNet(config, new ScopedWeights(fileWeightSource(file)), { attention })),
        { threads: 1 },
      );
      const gold = golden("goldens/sd15-tiny/unet.safetensors");
      for (const c of ["t999", "t287_5", "t_per_batch"]) {
        const t = gold.get(`${c}/timestep`);
        const out = await session.run({
          [UNET_IO.sample]: { data: gold.get("sample"), dims: gold.shape("sample") },
          [UNET_IO.timestep]: { data: t, dims: [t.length] },
          [UNET_IO.encoderHiddenStates]: {
            data: gold.get("encoder_hidden_states"),
            dims: gold.shape("encoder_hidden_states"),
          },
        });
        const err = relErr(out[UNET_IO.out]!.data, gold.get(`${c}/out`));
        console.log(`unet (${attention}) ${c}: rel err ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-4);
      }
    });
});

describe.skipIf(!HAVE_REFERENCE)("UNet at latent sizes that are not multiples of 2^(levels-1)", () => {
  for (const model of ["sd15-tiny", "sd2v-tiny", "sdxl-tiny"]) {
    it(`runs ${model} at 9x13, 6x10 and 5x8 latents (upsamplers take the skip connection's size, as diffusers' forward_upsample_size)`, async () => {
      const config = unetConfigFromDiffusers(JSON.parse(readFileSync(ref(`models/${model}/unet/config.json`), "utf8")));
      const file = SafetensorsFile.open(ref(`models/${model}/unet/diffusion_pytorch_model.safetensors`));
      const session = await Session.create(
        serializeGraph(buildUNet(config, new ScopedWeights(fileWeightSource(file)))),
        { threads: 1 },
      );
      const gold = golden(`goldens/${model}/unet.safetensors`);
      const extra: Record<string, FeedValue> =
        config.additionEmbedType === "text_time"
          ? {
              [UNET_IO.textEmbeds]: { data: gold.get("added_text_embeds"), dims: gold.shape("added_text_embeds") },
              [UNET_IO.timeIds]: { data: gold.get("added_time_ids"), dims: gold.shape("added_time_ids") },
            }
          : {};
      for (const [h, w] of [
        [9, 13],
        [6, 10],
        [5, 8],
      ] as const) {
        const sample = Float32Array.from({ length: 2 * 4 * h * w }, (_, i) => Math.sin(i * 0.37));
        const out = (
          await session.run({
            [UNET_IO.sample]: { data: sample, dims: [2, 4, h, w] },
            [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
            [UNET_IO.encoderHiddenStates]: {
              data: gold.get("encoder_hidden_states"),
              dims: gold.shape("encoder_hidden_states"),
            },
            ...extra,
          })
        )[UNET_IO.out]!;
        expect(out.dims).toEqual([2, 4, h, w]);
        expect(out.data.every(Number.isFinite)).toBe(true);
      }
    });
  }
});
