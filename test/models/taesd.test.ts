import { describe, expect, it } from "vitest";
import { buildTaesdDecoder, buildTaesdEncoder, TAESD_IO } from "../../src/models/taesd.js";
import { openTaesd } from "../../src/models/open-taesd.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("TAESD (taesd-tiny) against diffusers' AutoencoderTiny", () => {
  const gold = golden("goldens/taesd-tiny/taesd.safetensors");
  const layouts = [
    { name: "diffusers folder", path: ref("models/taesd-tiny") },
    { name: "madebyollin's taesd_encoder/taesd_decoder files (folder)", path: ref("models/taesd-tiny-madebyollin") },
  ];
  for (const l of layouts) {
    it(`${l.name}: decode and encode match (rel err < 1e-4)`, async () => {
      const t = openTaesd(l.path);
      try {
        expect(t.hasEncoder).toBe(true);
        expect(t.config.decoderChannels).toEqual([16, 16, 16, 16]);
        const dec = await Session.create(serializeGraph(buildTaesdDecoder(t.config, new ScopedWeights(t.weights))), {
          threads: 1,
        });
        const out = await dec.run({
          [TAESD_IO.latents]: { data: gold.get("decode/latents"), dims: gold.shape("decode/latents") },
        });
        expect(out[TAESD_IO.decoded]!.dims).toEqual([1, 3, 64, 64]);
        expect(relErr(out[TAESD_IO.decoded]!.data, gold.get("decode/out"))).toBeLessThan(1e-4);
        const enc = await Session.create(serializeGraph(buildTaesdEncoder(t.config, new ScopedWeights(t.weights))), {
          threads: 1,
        });
        const lat = await enc.run({
          [TAESD_IO.image]: { data: gold.get("encode/image"), dims: gold.shape("encode/image") },
        });
        expect(relErr(lat[TAESD_IO.latents]!.data, gold.get("encode/latents"))).toBeLessThan(1e-4);
      } finally {
        t.close();
      }
    });
  }

  it("madebyollin's decoder file alone opens as a decoder (no encoder), with the layer indices shifted past its Clamp", () => {
    const t = openTaesd(ref("models/taesd-tiny-madebyollin/taesd_decoder.safetensors"));
    try {
      expect(t.hasEncoder).toBe(false);
      expect(t.weights.has("decoder.layers.0.weight")).toBe(true); // madebyollin's "1.weight"
      expect(t.weights.has("decoder.layers.18.bias")).toBe(true); // "19.bias", the conv to RGB
      expect(t.weights.has("decoder.layers.19.bias")).toBe(false);
    } finally {
      t.close();
    }
  });

  it("a file that is not a TAESD is refused, naming the layouts", () => {
    expect(() => openTaesd(ref("models/controlnet-tiny.ldm.safetensors"))).toThrow(
      /not a key of madebyollin's TAESD.*a TAESD is a diffusers AutoencoderTiny folder/,
    );
  });
});
