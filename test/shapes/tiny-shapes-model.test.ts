import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { buildClipText, CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { buildVaeDecoder, buildVaeEncoder, VAE_IO } from "../../src/models/vae.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import type { Checkpoint } from "../../src/weights/checkpoint.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { sha256File } from "../../src/weights/hash.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { relErr } from "../helpers/fixtures.js";

/**
 * The embedded tiny-shapes model against the torch code that trained it (scripts/train/train_tiny_sd.py).
 * The fixture holds inputs and torch's outputs computed from the exported fp16 weights; our ONNX graphs built
 * from either file layout must give the same numbers, which proves that the trainer's modules and our builders
 * are one architecture and that both layouts carry the same weights. Runs only when the model files exist.
 */

const ROOT = resolve(import.meta.dirname, "../..");
const FOLDER = join(ROOT, "models/tiny-shapes");
const SINGLE = join(ROOT, "models/tiny-shapes.safetensors");
const FIXTURE = join(ROOT, "test/shapes/fixtures/tiny-shapes-golden.safetensors");
const PRESENT = [FOLDER, SINGLE, FIXTURE].every((p) => existsSync(p));

/** Tolerance: the same fp32 math in a different order (ORT kernels vs torch). */
const TOLERANCE = 1e-4;

function fixture() {
  const f = SafetensorsFile.open(FIXTURE);
  return {
    file: f,
    get: (name: string) => f.float32(name),
    shape: (name: string) => f.info(name).shape,
  };
}

async function session(g: Parameters<typeof serializeGraph>[0]): Promise<Session> {
  return Session.create(serializeGraph(g), { threads: 1 });
}

describe.skipIf(!PRESENT)("tiny-shapes model (models/tiny-shapes*)", () => {
  it("the parity fixture was computed from these weight files", async () => {
    const meta = SafetensorsFile.open(FIXTURE).metadata;
    const files: Record<string, string> = {
      unet: "unet/diffusion_pytorch_model.safetensors",
      vae: "vae/diffusion_pytorch_model.safetensors",
      text_encoder: "text_encoder/model.safetensors",
    };
    for (const [role, file] of Object.entries(files)) {
      expect(
        await sha256File(join(FOLDER, file)),
        `${role}: rerun the trainer's export, which rewrites the fixture`,
      ).toBe(meta[`sha256:${role}`]);
    }
  });

  it("opens as a diffusers folder and as a single file (with the folder as config) with identical weights", () => {
    const folder = openCheckpoint(FOLDER);
    const single = openCheckpoint(SINGLE, { configDir: FOLDER });
    try {
      expect(single.config).toEqual(folder.config);
      for (const c of ["unet", "vae", "textEncoder"] as const) {
        const a = folder[c],
          b = single[c];
        expect(b.keys().sort()).toEqual(a.keys().sort());
        for (const k of a.keys()) {
          expect(b.shape(k), k).toEqual(a.shape(k));
          expect(Buffer.from(b.float32(k).buffer).equals(Buffer.from(a.float32(k).buffer)), k).toBe(true);
        }
      }
      expect(folder.config.unet.sampleSize * 8).toBe(64);
      expect(folder.components.unet.dtype).toBe("F16");
    } finally {
      folder.close();
      single.close();
    }
  });

  it("our tokenizer reads the learned vocabulary and gives the trainer's ids", async () => {
    const tok = await ClipTokenizer.load(join(FOLDER, "tokenizer"));
    const f = fixture();
    const ids = f.file.int64("input_ids");
    const prompts = f.file.metadata.prompts!.split("\n");
    prompts.forEach((p, i) => {
      expect(tok.encode(p)).toEqual(Array.from(ids.subarray(i * 77, (i + 1) * 77), Number));
    });
  });

  describe.each([
    ["diffusers folder", () => openCheckpoint(FOLDER)],
    ["single file", () => openCheckpoint(SINGLE, { configDir: FOLDER })],
  ] as const)("%s: ONNX graphs match the torch modules", (_, open) => {
    const withCheckpoint = async (fn: (c: Checkpoint) => Promise<void>) => {
      const c = open();
      try {
        await fn(c);
      } finally {
        c.close();
      }
    };

    it("text encoder", () =>
      withCheckpoint(async (c) => {
        const f = fixture();
        const s = await session(buildClipText(c.config.textEncoder, new ScopedWeights(c.textEncoder)));
        const out = await s.run(
          { [CLIP_TEXT_IO.inputIds]: { data: f.file.int64("input_ids"), dims: f.shape("input_ids") } },
          [CLIP_TEXT_IO.lastHidden],
        );
        const err = relErr(out[CLIP_TEXT_IO.lastHidden]!.data, f.get("text/last_hidden_state"));
        console.log(`text encoder: rel err ${err.toExponential(2)}`);
        expect(err).toBeLessThan(TOLERANCE);
      }));

    it("UNet, one timestep for the batch and one per item", () =>
      withCheckpoint(async (c) => {
        const f = fixture();
        const s = await session(buildUNet(c.config.unet, new ScopedWeights(c.unet)));
        for (const k of ["t_shared", "t_each"]) {
          const t = f.get(`unet/${k}/timestep`);
          const out = await s.run({
            [UNET_IO.sample]: { data: f.get("unet/sample"), dims: f.shape("unet/sample") },
            [UNET_IO.timestep]: { data: t, dims: [t.length] },
            [UNET_IO.encoderHiddenStates]: {
              data: f.get("unet/encoder_hidden_states"),
              dims: f.shape("unet/encoder_hidden_states"),
            },
          });
          const err = relErr(out[UNET_IO.out]!.data, f.get(`unet/${k}/out`));
          console.log(`unet ${k}: rel err ${err.toExponential(2)}`);
          expect(err).toBeLessThan(TOLERANCE);
        }
      }));

    it("VAE encoder and decoder", () =>
      withCheckpoint(async (c) => {
        const f = fixture();
        const enc = await session(buildVaeEncoder(c.config.vae, new ScopedWeights(c.vae)));
        const e = await enc.run({ [VAE_IO.image]: { data: f.get("vae/image"), dims: f.shape("vae/image") } });
        const dec = await session(buildVaeDecoder(c.config.vae, new ScopedWeights(c.vae)));
        const d = await dec.run({ [VAE_IO.latent]: { data: f.get("vae/latent"), dims: f.shape("vae/latent") } });
        const errs = {
          mean: relErr(e[VAE_IO.mean]!.data, f.get("vae/mean")),
          logvar: relErr(e[VAE_IO.logvar]!.data, f.get("vae/logvar")),
          decoded: relErr(d[VAE_IO.decoded]!.data, f.get("vae/decoded")),
        };
        console.log(`vae: rel err ${JSON.stringify(errs)}`);
        for (const v of Object.values(errs)) expect(v).toBeLessThan(TOLERANCE);
      }));
  });
});
