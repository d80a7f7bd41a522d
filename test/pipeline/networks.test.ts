import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { UNET_IO } from "../../src/models/unet.js";
import { VAE_IO } from "../../src/models/vae.js";
import { Networks } from "../../src/pipeline/networks.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

const layouts = [
  { name: "diffusers folder", open: () => openCheckpoint(ref("models/sd15-tiny")) },
  { name: "single file + config folder", open: () => openCheckpoint(ref("models/sd15-tiny.ldm.safetensors"), { configDir: ref("models/sd15-tiny") }) },
];

describe.skipIf(!HAVE_REFERENCE)("sd15-tiny networks from a checkpoint, through the compile cache", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-networks-"));

  for (const layout of layouts) {
    it(`${layout.name}: text encoder, UNet and VAE match the reference`, async () => {
      const nets = await Networks.open(layout.open(), { cacheDir, threads: 1 });
      const text = golden("goldens/sd15-tiny/text_encoder.safetensors");
      const t = await (await nets.get("text_encoder")).run({ [CLIP_TEXT_IO.inputIds]: { data: text.ints("text_encoder/input_ids"), dims: [3, 77] } });
      expect(relErr(t[CLIP_TEXT_IO.lastHidden]!.data, text.get("text_encoder/last_hidden_state"))).toBeLessThan(1e-4);
      const states = text.get("text_encoder/hidden_states");
      const layerSize = 3 * 77 * 32;
      const penultimate = states.subarray(2 * layerSize, 3 * layerSize); // hidden_states[-2] of 4 (embeddings + 3 layers)
      expect(relErr(t[CLIP_TEXT_IO.hiddenStates]!.data.subarray(2 * layerSize, 3 * layerSize), penultimate)).toBeLessThan(1e-4);

      const u = golden("goldens/sd15-tiny/unet.safetensors");
      const out = await (await nets.get("unet")).run({
        [UNET_IO.sample]: { data: u.get("sample"), dims: u.shape("sample") },
        [UNET_IO.timestep]: { data: u.get("t999/timestep"), dims: [1] },
        [UNET_IO.encoderHiddenStates]: { data: u.get("encoder_hidden_states"), dims: u.shape("encoder_hidden_states") },
      });
      expect(relErr(out[UNET_IO.out]!.data, u.get("t999/out"))).toBeLessThan(1e-4);

      const v = golden("goldens/sd15-tiny/vae.safetensors");
      const dec = await (await nets.get("vae_decoder")).run({ [VAE_IO.latent]: { data: v.get("decode/z"), dims: [1, 4, 8, 8] } });
      expect(relErr(dec[VAE_IO.decoded]!.data, v.get("decode/out"))).toBeLessThan(1e-4);
      const enc = await (await nets.get("vae_encoder")).run({ [VAE_IO.image]: { data: v.get("encode/image"), dims: [1, 3, 64, 64] } });
      expect(relErr(enc[VAE_IO.mean]!.data, v.get("encode/mean"))).toBeLessThan(1e-4);
      await nets.release();
    });
  }

  it("a second load of the same checkpoint builds nothing", async () => {
    const messages: string[] = [];
    const nets = await Networks.open(layouts[0]!.open(), { cacheDir, threads: 1, onStatus: (m) => messages.push(m) });
    await nets.get("unet");
    await nets.get("text_encoder");
    expect(messages.filter((m) => m.startsWith("building"))).toEqual([]);
    await nets.release();
  });
});
