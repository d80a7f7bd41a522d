import { describe, expect, it } from "vitest";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { buildClipText, CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { buildVaeDecoder, buildVaeEncoder, VAE_IO } from "../../src/models/vae.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import type { GraphBuilder } from "../../src/onnx/builder.js";
import { Session, type FeedValue } from "../../src/runtime/session.js";
import type { Checkpoint } from "../../src/weights/checkpoint.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

/**
 * Every network of the SD2, SDXL and LCM tiny models against the reference, from the diffusers folder and from the
 * single file opened with the folder as its config: the two layouts must give the reference's numbers alike.
 */

const session = (g: GraphBuilder) => Session.create(serializeGraph(g), { threads: 1 });
const tensor = (gold: ReturnType<typeof golden>, name: string): FeedValue => ({
  data: gold.get(name),
  dims: gold.shape(name),
});

function expectClose(actual: Float32Array, expected: Float32Array, what: string): void {
  const err = relErr(actual, expected);
  console.log(`${what}: rel err ${err.toExponential(2)}`);
  expect(err, what).toBeLessThan(1e-4);
}

const LAYOUTS = {
  "diffusers folder": (model: string) => openCheckpoint(ref(`models/${model}`)),
  "single file": (model: string) =>
    openCheckpoint(ref(`models/${model}.ldm.safetensors`), { configDir: ref(`models/${model}`) }),
};

async function checkTextEncoders(ckpt: Checkpoint, model: string, what: string): Promise<void> {
  const gold = golden(`goldens/${model}/text_encoder.safetensors`);
  const encoders = [
    [ckpt.textEncoder, ckpt.config.textEncoder, "text_encoder"],
    [ckpt.textEncoder2, ckpt.config.textEncoder2, "text_encoder_2"],
  ] as const;
  for (const [weights, config, key] of encoders) {
    if (!weights || !config) continue;
    const s = await session(buildClipText(config, new ScopedWeights(weights)));
    const out = await s.run({ [CLIP_TEXT_IO.inputIds]: { data: gold.ints(`${key}/input_ids`), dims: [3, 77] } });
    expectClose(
      out[CLIP_TEXT_IO.lastHidden]!.data,
      gold.get(`${key}/last_hidden_state`),
      `${what} ${key} last_hidden_state`,
    );
    expectClose(out[CLIP_TEXT_IO.hiddenStates]!.data, gold.get(`${key}/hidden_states`), `${what} ${key} hidden_states`);
    if (config.projectionDim === null)
      expectClose(out[CLIP_TEXT_IO.pooled]!.data, gold.get(`${key}/pooler_output`), `${what} ${key} pooler_output`);
    else expectClose(out[CLIP_TEXT_IO.textEmbeds]!.data, gold.get(`${key}/text_embeds`), `${what} ${key} text_embeds`);
  }
}

async function checkVae(ckpt: Checkpoint, model: string, what: string): Promise<void> {
  const gold = golden(`goldens/${model}/vae.safetensors`);
  const w = new ScopedWeights(ckpt.vae);
  const dec = await session(buildVaeDecoder(ckpt.config.vae, w));
  expectClose(
    (await dec.run({ [VAE_IO.latent]: tensor(gold, "decode/z") }))[VAE_IO.decoded]!.data,
    gold.get("decode/out"),
    `${what} vae decode`,
  );
  const enc = await session(buildVaeEncoder(ckpt.config.vae, w));
  expectClose(
    (await enc.run({ [VAE_IO.image]: tensor(gold, "encode/image") }))[VAE_IO.mean]!.data,
    gold.get("encode/mean"),
    `${what} vae encode`,
  );
}

for (const [layout, open] of Object.entries(LAYOUTS)) {
  describe.skipIf(!HAVE_REFERENCE)(`SD2, SDXL and LCM networks (${layout})`, () => {
    for (const model of ["sd2v-tiny", "sdxl-tiny"]) {
      it(`${model}: UNet for timesteps 999, 287.5 and one per batch item, text encoders and VAE match the reference`, async () => {
        const ckpt = open(model);
        try {
          const unet = await session(buildUNet(ckpt.config.unet, new ScopedWeights(ckpt.unet)));
          const gold = golden(`goldens/${model}/unet.safetensors`);
          const extra: Record<string, FeedValue> =
            ckpt.config.unet.additionEmbedType === "text_time"
              ? {
                  [UNET_IO.textEmbeds]: tensor(gold, "added_text_embeds"),
                  [UNET_IO.timeIds]: tensor(gold, "added_time_ids"),
                }
              : {};
          for (const c of ["t999", "t287_5", "t_per_batch"]) {
            const t = gold.get(`${c}/timestep`);
            const out = await unet.run({
              [UNET_IO.sample]: tensor(gold, "sample"),
              [UNET_IO.timestep]: { data: t, dims: [t.length] },
              [UNET_IO.encoderHiddenStates]: tensor(gold, "encoder_hidden_states"),
              ...extra,
            });
            expectClose(out[UNET_IO.out]!.data, gold.get(`${c}/out`), `${model} ${layout} unet ${c}`);
          }
          await checkTextEncoders(ckpt, model, `${model} ${layout}`);
          await checkVae(ckpt, model, `${model} ${layout}`);
        } finally {
          ckpt.close();
        }
      });
    }

    it("lcm-tiny: UNet matches every call of the reference LCM run (timestep_cond = guidance embedding of w = 7)", async () => {
      const ckpt = open("lcm-tiny");
      try {
        expect(ckpt.config.unet.timeCondProjDim).toBe(32);
        const unet = await session(buildUNet(ckpt.config.unet, new ScopedWeights(ckpt.unet)));
        const gold = golden("goldens/lcm-tiny/txt2img.safetensors");
        const inputs = gold.get("unet_inputs"),
          outputs = gold.get("unet_outputs"),
          timesteps = gold.get("unet_timesteps");
        const n = 4 * 8 * 8;
        for (let i = 0; i < 4; i++) {
          const out = await unet.run({
            [UNET_IO.sample]: { data: inputs.slice(i * n, (i + 1) * n), dims: [1, 4, 8, 8] },
            [UNET_IO.timestep]: { data: timesteps.slice(i, i + 1), dims: [1] },
            [UNET_IO.encoderHiddenStates]: tensor(gold, "encoder_hidden_states"),
            [UNET_IO.timestepCond]: tensor(gold, "timestep_cond"),
          });
          expectClose(out[UNET_IO.out]!.data, outputs.slice(i * n, (i + 1) * n), `lcm-tiny ${layout} unet call ${i}`);
        }
      } finally {
        ckpt.close();
      }
    });
  });
}
