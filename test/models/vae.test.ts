import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { vaeConfigFromDiffusers } from "../../src/configs/vae.js";
import { buildVaeDecoder, buildVaeEncoder, VAE_IO } from "../../src/models/vae.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

for (const model of ["sd15-tiny"])
  describe.skipIf(!HAVE_REFERENCE)(`VAE (${model}, diffusers folder)`, () => {
    const load = () => {
      const config = vaeConfigFromDiffusers(JSON.parse(readFileSync(ref(`models/${model}/vae/config.json`), "utf8")));
      const w = new ScopedWeights(
        fileWeightSource(SafetensorsFile.open(ref(`models/${model}/vae/diffusion_pytorch_model.safetensors`))),
      );
      return { config, w, gold: golden(`goldens/${model}/vae.safetensors`) };
    };

    // The upsamplers as four 2x2 convolutions (the fp32 default), or the stored 3x3 on the upsampled map (int8's form).
    const forms = [
      { attention: "matmul", upsampling: "parity" },
      { attention: "ms-mha", upsampling: "parity" },
      { attention: "ms-mha", upsampling: "nearest" },
    ] as const;
    for (const { attention, upsampling } of forms)
      it(`decodes 8x8 and 6x10 latents like diffusers (${attention} attention, ${upsampling} upsampling)`, async () => {
        const { config, w, gold } = load();
        const graph = buildVaeDecoder(config, w, { attention, upsampling });
        // sd15-tiny's decoder has one upsampler: its four 2x2 convolutions' outputs are interleaved by DepthToSpace.
        expect(graph.nodes.some((n) => n.opType === "DepthToSpace")).toBe(upsampling === "parity");
        const session = await Session.create(serializeGraph(graph), { threads: 1 });
        for (const c of ["decode", "decode_6x10"]) {
          const out = await session.run({ [VAE_IO.latent]: { data: gold.get(`${c}/z`), dims: gold.shape(`${c}/z`) } });
          expect(out[VAE_IO.decoded]!.dims).toEqual(gold.shape(`${c}/out`));
          const err = relErr(out[VAE_IO.decoded]!.data, gold.get(`${c}/out`));
          console.log(`${model} vae ${c}: rel err ${err.toExponential(2)}`);
          expect(err).toBeLessThan(1e-4);
        }
      });

    it("encodes 64x64 and 48x80 images to the reference posterior mean and log-variance", async () => {
      const { config, w, gold } = load();
      const session = await Session.create(serializeGraph(buildVaeEncoder(config, w)), { threads: 1 });
      for (const c of ["encode", "encode_48x80"]) {
        const out = await session.run({
          [VAE_IO.image]: { data: gold.get(`${c}/image`), dims: gold.shape(`${c}/image`) },
        });
        const err = relErr(out[VAE_IO.mean]!.data, gold.get(`${c}/mean`));
        console.log(`${model} vae ${c}: mean rel err ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-4);
        if (c === "encode") expect(relErr(out[VAE_IO.logvar]!.data, gold.get("encode/logvar"))).toBeLessThan(1e-4);
      }
    });
  });

describe.skipIf(!HAVE_REFERENCE)("VAE configs", () => {
  it("read the scaling factor (SDXL's 0.13025) and force_upcast", () => {
    for (const [model, scaling] of [
      ["sd15-tiny", 0.18215],
      ["sd2v-tiny", 0.18215],
      ["sdxl-tiny", 0.13025],
    ] as const) {
      const config = vaeConfigFromDiffusers(JSON.parse(readFileSync(ref(`models/${model}/vae/config.json`), "utf8")));
      expect(config.scalingFactor).toBe(scaling);
      expect(config.forceUpcast).toBe(true);
    }
  });
});
