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

async function unetSession(model: string): Promise<Session> {
  const config = unetConfigFromDiffusers(JSON.parse(readFileSync(ref(`models/${model}/unet/config.json`), "utf8")));
  const w = new ScopedWeights(fileWeightSource(SafetensorsFile.open(ref(`models/${model}/unet/diffusion_pytorch_model.safetensors`))));
  return Session.create(serializeGraph(buildUNet(config, w)), { threads: 1 });
}

const tensor = (gold: ReturnType<typeof golden>, name: string): FeedValue => ({ data: gold.get(name), dims: gold.shape(name) });

describe.skipIf(!HAVE_REFERENCE)("UNet of SD2 and SDXL (diffusers folders)", () => {
  for (const model of ["sd2v-tiny", "sdxl-tiny"]) {
    it(`${model}: matches diffusers for timesteps 999, 287.5 and one per batch item`, async () => {
      const session = await unetSession(model);
      const gold = golden(`goldens/${model}/unet.safetensors`);
      const extra: Record<string, FeedValue> = model === "sdxl-tiny"
        ? { [UNET_IO.textEmbeds]: tensor(gold, "added_text_embeds"), [UNET_IO.timeIds]: tensor(gold, "added_time_ids") }
        : {};
      for (const c of ["t999", "t287_5", "t_per_batch"]) {
        const t = gold.get(`${c}/timestep`);
        const out = await session.run({
          [UNET_IO.sample]: tensor(gold, "sample"),
          [UNET_IO.timestep]: { data: t, dims: [t.length] },
          [UNET_IO.encoderHiddenStates]: tensor(gold, "encoder_hidden_states"),
          ...extra,
        });
        const err = relErr(out[UNET_IO.out]!.data, gold.get(`${c}/out`));
        console.log(`${model} unet ${c}: rel err ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-4);
      }
    });
  }
});

describe.skipIf(!HAVE_REFERENCE)("UNet of LCM (diffusers folder)", () => {
  it("lcm-tiny: matches every UNet call of the reference LCM run (timestep_cond = guidance embedding of w = 7)", async () => {
    const session = await unetSession("lcm-tiny");
    const gold = golden("goldens/lcm-tiny/txt2img.safetensors");
    const inputs = gold.get("unet_inputs"), outputs = gold.get("unet_outputs"), timesteps = gold.get("unet_timesteps");
    const n = 4 * 8 * 8;
    for (let i = 0; i < 4; i++) {
      const out = await session.run({
        [UNET_IO.sample]: { data: inputs.slice(i * n, (i + 1) * n), dims: [1, 4, 8, 8] },
        [UNET_IO.timestep]: { data: timesteps.slice(i, i + 1), dims: [1] },
        [UNET_IO.encoderHiddenStates]: tensor(gold, "encoder_hidden_states"),
        [UNET_IO.timestepCond]: tensor(gold, "timestep_cond"),
      });
      const err = relErr(out[UNET_IO.out]!.data, outputs.slice(i * n, (i + 1) * n));
      console.log(`lcm-tiny unet call ${i}: rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    }
  });
});
