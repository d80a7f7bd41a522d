/**
 * RRDBNet (ESRGAN / Real-ESRGAN upscalers) against a PyTorch forward of the same architecture and weights: tiny
 * models (8 features, growth 4, 2 blocks) made by scripts/reference/rrdbnet.py, saved in both key layouts and
 * both file formats (torch.save's zip and legacy pickles, read by the restricted reader, and safetensors).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rrdbnetScale } from "../../src/configs/rrdbnet.js";
import { buildRrdbnet, RRDBNET_IO } from "../../src/models/rrdbnet.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { openRrdbnet } from "../../src/weights/rrdbnet-checkpoint.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { goldenAt, OWN_FIXTURES, relErr } from "../helpers/fixtures.js";

const dir = join(OWN_FIXTURES, "rrdbnet");
const gold = goldenAt(join(dir, "outputs.safetensors"));

const CASES = [
  { file: "x4-new.pth", layout: "real-esrgan", scale: 4, golden: "x4", input: "x4" },
  { file: "x4-new.safetensors", layout: "real-esrgan", scale: 4, golden: "x4", input: "x4" },
  // fp16 storages in torch.save's legacy (pre-1.6) format, as old ESRGAN files are
  { file: "x4-old.pth", layout: "esrgan", scale: 4, golden: "x4-half", input: "x4" },
  { file: "x4-old.safetensors", layout: "esrgan", scale: 4, golden: "x4", input: "x4" },
  { file: "x2-new.pth", layout: "real-esrgan", scale: 2, golden: "x2", input: "x2" },
  { file: "x1-new.safetensors", layout: "real-esrgan", scale: 1, golden: "x1", input: "x1" },
] as const;

describe("RRDBNet against PyTorch", () => {
  for (const c of CASES) {
    it(`${c.file} (${c.layout} layout, x${c.scale}) matches torch's forward (rel err < 1e-4)`, async () => {
      const model = openRrdbnet(join(dir, c.file));
      try {
        expect(model.layout).toBe(c.layout);
        expect(model.config).toMatchObject({ features: 8, growth: 4, blocks: 2, upsamples: 2, imageChannels: 3 });
        expect(rrdbnetScale(model.config)).toBe(c.scale);
        const session = await Session.create(
          serializeGraph(buildRrdbnet(model.config, new ScopedWeights(model.weights))),
          {
            threads: 1,
          },
        );
        const input = gold.get(`${c.input}/input`);
        const dims = gold.shape(`${c.input}/input`);
        const out = await session.run({ [RRDBNET_IO.image]: { data: input, dims } });
        expect(out[RRDBNET_IO.upscaled]!.dims).toEqual(gold.shape(`${c.golden}/output`));
        expect(relErr(out[RRDBNET_IO.upscaled]!.data, gold.get(`${c.golden}/output`))).toBeLessThan(1e-4);
      } finally {
        model.close();
      }
    });
  }

  it("a weights file of another architecture is refused, naming both layouts", () => {
    expect(() => openRrdbnet(join(OWN_FIXTURES, "tiny-shapes-scribble-golden.safetensors"))).toThrow(
      /no conv_first\.weight or model\.0\.weight.*Real-ESRGAN.*old ESRGAN/,
    );
  });
});
