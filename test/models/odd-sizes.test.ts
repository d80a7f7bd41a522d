import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session, type FeedValue } from "../../src/runtime/session.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { goldenAt, HAVE_REFERENCE, OWN_FIXTURES, ref, relErr, type Golden } from "../helpers/fixtures.js";

/**
 * The UNets of the three tiny families at latent sizes that 2^(levels-1) does not divide (odd, even but not a
 * multiple of 4, and 65x65 = 520x520 px), against the reference's outputs there (test/fixtures/odd-sizes, made by
 * scripts/reference/odd_sizes.py from a PyTorch model checked against the shared goldens). There the reference
 * upsamples each level to the size of the skip connection it joins, so doubling is wrong by a row or a column.
 */

const LAYOUTS = {
  "diffusers folder": (model: string) => openCheckpoint(ref(`models/${model}`)),
  "single file": (model: string) =>
    openCheckpoint(ref(`models/${model}.ldm.safetensors`), { configDir: ref(`models/${model}`) }),
};

const SIZES: Record<string, string[]> = {
  "sd15-tiny": ["9x13", "5x7", "10x6", "65x65"],
  "sd2v-tiny": ["9x13", "5x7", "10x6"],
  "sdxl-tiny": ["9x13", "5x7", "10x6"],
};

const tensor = (gold: Golden, name: string, batch?: number): FeedValue => {
  const dims = [...gold.shape(name)];
  const data = gold.get(name);
  if (batch === undefined) return { data, dims };
  return { data: data.subarray(0, (data.length / dims[0]!) * batch), dims: [batch, ...dims.slice(1)] };
};

for (const [layout, open] of Object.entries(LAYOUTS)) {
  describe.skipIf(!HAVE_REFERENCE)(`UNet at latent sizes that are not multiples of 2^(levels-1) (${layout})`, () => {
    for (const [model, sizes] of Object.entries(SIZES)) {
      it(`${model} matches the reference at ${sizes.join(", ")} latents`, async () => {
        const gold = goldenAt(join(OWN_FIXTURES, "odd-sizes", `unet-${model}.safetensors`));
        const ckpt = open(model);
        try {
          const unet = await Session.create(serializeGraph(buildUNet(ckpt.config.unet, new ScopedWeights(ckpt.unet))), {
            threads: 1,
          });
          for (const size of sizes) {
            const sample = tensor(gold, `${size}/sample`);
            const batch = sample.dims[0]!;
            const t = gold.get(`${size}/timestep`);
            const extra: Record<string, FeedValue> =
              ckpt.config.unet.additionEmbedType === "text_time"
                ? {
                    [UNET_IO.textEmbeds]: tensor(gold, "text_embeds", batch),
                    [UNET_IO.timeIds]: tensor(gold, `${size}/time_ids`),
                  }
                : {};
            const out = (
              await unet.run({
                [UNET_IO.sample]: sample,
                [UNET_IO.timestep]: { data: t, dims: [t.length] },
                [UNET_IO.encoderHiddenStates]: tensor(gold, "encoder_hidden_states", batch),
                ...extra,
              })
            )[UNET_IO.out]!;
            expect(out.dims, `${model} ${size}`).toEqual(gold.shape(`${size}/out`));
            const err = relErr(out.data, gold.get(`${size}/out`));
            console.log(`${model} (${layout}) unet ${size}: rel err ${err.toExponential(2)}`);
            expect(err, `${model} ${layout} ${size}`).toBeLessThan(1e-4);
          }
        } finally {
          ckpt.close();
        }
      });
    }
  });
}
