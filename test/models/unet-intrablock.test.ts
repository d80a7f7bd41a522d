import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { intrablockResidualName, intrablockShapes } from "../../src/models/unet-blocks.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session, type FeedValue } from "../../src/runtime/session.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { goldenAt, HAVE_REFERENCE, OWN_FIXTURES, ref, relErr } from "../helpers/fixtures.js";

/**
 * The UNet variant that takes a T2I-Adapter's residuals inside its down blocks, against the reference's UNet given
 * the tiny adapters' features times 0.8 as diffusers' down_intrablock_additional_residuals
 * (test/fixtures/t2i-adapter, scripts/reference/t2i_adapter.py): sd15-tiny's three features go to its three down
 * levels (two cross-attention levels, then a plain one without downsampler), sdxl-tiny's four to a plain level with
 * a downsampler, two cross-attention levels and the mid block.
 */
const gold = goldenAt(join(OWN_FIXTURES, "t2i-adapter", "goldens.safetensors"));
const get = (name: string): FeedValue => ({ data: gold.get(name), dims: [...gold.shape(name)] });

describe.skipIf(!HAVE_REFERENCE)("UNet with T2I-Adapter (intrablock) residuals", () => {
  for (const family of ["sd15-tiny", "sdxl-tiny"]) {
    it(`${family}: equals the plain UNet with zero residuals and the reference with the adapter's (rel err < 1e-4)`, async () => {
      const ckpt = openCheckpoint(ref(`models/${family}`));
      try {
        const w = new ScopedWeights(ckpt.unet);
        const plain = await Session.create(serializeGraph(buildUNet(ckpt.config.unet, w)), { threads: 1 });
        const adapted = await Session.create(
          serializeGraph(buildUNet(ckpt.config.unet, w, { adapterResiduals: true })),
          {
            threads: 1,
          },
        );
        expect(plain.inputNames.some((n) => n.startsWith("down_intrablock"))).toBe(false);
        const feeds: Record<string, FeedValue> = {
          [UNET_IO.sample]: get(`${family}/unet/sample`),
          [UNET_IO.timestep]: get(`${family}/unet/timestep`),
          [UNET_IO.encoderHiddenStates]: get(`${family}/unet/encoder_hidden_states`),
        };
        if (family === "sdxl-tiny") {
          feeds[UNET_IO.textEmbeds] = get(`${family}/unet/text_embeds`);
          feeds[UNET_IO.timeIds] = get(`${family}/unet/time_ids`);
        }
        const [, , h, wd] = feeds[UNET_IO.sample]!.dims as number[];
        const shapes = intrablockShapes(ckpt.config.unet, h!, wd!);
        const scale = gold.get(`${family}/unet/scale`)[0]!;
        const zeros: Record<string, FeedValue> = {};
        const residuals: Record<string, FeedValue> = {};
        shapes.forEach(([c, rh, rw], i) => {
          const name = `${family}/feature_${i}`;
          const dims = [1, c, rh, rw];
          zeros[intrablockResidualName(i)] = { data: new Float32Array(c * rh * rw), dims };
          // Features the adapter does not have (sd15-tiny's mid block) are zeros, as diffusers adds nothing there.
          residuals[intrablockResidualName(i)] = gold.keys().includes(name)
            ? (expect(gold.shape(name)).toEqual(dims), { data: gold.get(name).map((v) => v * scale), dims })
            : zeros[intrablockResidualName(i)]!;
        });
        const base = (await plain.run(feeds))[UNET_IO.out]!.data;
        const withZeros = (await adapted.run({ ...feeds, ...zeros }))[UNET_IO.out]!.data;
        const withAdapter = (await adapted.run({ ...feeds, ...residuals }))[UNET_IO.out]!.data;
        expect(relErr(base, gold.get(`${family}/unet/out_plain`))).toBeLessThan(1e-4);
        expect(relErr(withZeros, base)).toBeLessThan(1e-6);
        expect(relErr(withAdapter, gold.get(`${family}/unet/out_adapter`))).toBeLessThan(1e-4);
        // The adapter moves the output well beyond that tolerance, so the test tells where the residuals enter.
        expect(relErr(gold.get(`${family}/unet/out_plain`), gold.get(`${family}/unet/out_adapter`))).toBeGreaterThan(
          1e-2,
        );
        await plain.release();
        await adapted.release();
      } finally {
        ckpt.close();
      }
    });
  }
});
