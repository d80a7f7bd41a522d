import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { writeScaledVaes } from "../helpers/scaled-vae.js";
import { encodeSafetensors, f32Bytes } from "../weights/safetensors-writer.js";

/** How much the decoder's last conv is scaled: the decoded image (before clamping) is scaled with it. */
const SCALE = 0.5;

describe.skipIf(!HAVE_REFERENCE)("a VAE used instead of the checkpoint's (--vae PATH, A1111's sd_vae)", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-vae-override-"));
  const cacheDir = join(dir, "cache");
  const params = { prompt: "a red boat", steps: 3, seed: 11, sampler: "euler", width: 64, height: 64 };
  const model = ref("models/sd15-tiny");
  const files = { diffusers: "", original: "", folder: "" };
  let plain: { pixels: Uint8Array; infotext: string };

  async function generate(vae?: string) {
    const pipe = await loadPipeline(model, { cacheDir, threads: 1, safetyChecker: false, watermark: false, vae });
    try {
      const r = await pipe.generate(params);
      return { pixels: r.images[0]!.image.data, infotext: r.images[0]!.infotext };
    } finally {
      await pipe.close();
    }
  }

  beforeAll(async () => {
    Object.assign(files, writeScaledVaes(dir, SCALE));
    plain = await generate();
  }, 300_000);
  afterAll(() => undefined);

  /** The plain image's pixels as the scaled decoder gives them: x = 2p/255 - 1 scaled, back to bytes. */
  function expectScaled(pixels: Uint8Array): void {
    let compared = 0;
    for (let i = 0; i < pixels.length; i++) {
      const p = plain.pixels[i]!;
      if (p === 0 || p === 255) continue; // clamped: the decoder's value is not known
      const expected = ((SCALE * (2 * (p / 255) - 1)) / 2 + 0.5) * 255;
      expect(Math.abs(pixels[i]! - expected), `byte ${i}`).toBeLessThanOrEqual(1);
      compared++;
    }
    expect(compared).toBeGreaterThan(pixels.length / 2);
  }

  it("decodes with a single file in diffusers' names and writes VAE and VAE hash as A1111 does", async () => {
    const out = await generate(files.diffusers);
    expectScaled(out.pixels);
    const sha = createHash("sha256").update(readFileSync(files.diffusers)).digest("hex");
    expect(out.infotext).toContain(`VAE hash: ${sha.slice(0, 10)}, VAE: scaled-diffusers.safetensors`);
    expect(plain.infotext).not.toMatch(/VAE/);
  });

  it("reads the original layout and a diffusers folder to the same VAE", async () => {
    const diffusers = await generate(files.diffusers);
    const original = await generate(files.original);
    const folder = await generate(files.folder);
    expect(Buffer.from(original.pixels).equals(Buffer.from(diffusers.pixels))).toBe(true);
    expect(Buffer.from(folder.pixels).equals(Buffer.from(diffusers.pixels))).toBe(true);
    expect(folder.infotext).toContain("VAE: scaled-folder");
  });

  it("takes a VAE per generation: a path opens it once, null is the checkpoint's own", async () => {
    const pipe = await loadPipeline(model, {
      cacheDir,
      threads: 1,
      safetyChecker: false,
      watermark: false,
      vae: files.diffusers,
    });
    try {
      const own = await pipe.generate({ ...params, vae: null });
      expect(Buffer.from(own.images[0]!.image.data).equals(Buffer.from(plain.pixels))).toBe(true);
      expect(own.images[0]!.infotext).not.toMatch(/VAE/);
      const other = await pipe.generate({ ...params, vae: files.original });
      expectScaled(other.images[0]!.image.data);
      expect(other.images[0]!.infotext).toContain("VAE: vae-ft-scaled.safetensors");
      const loaded = await pipe.generate(params);
      expect(loaded.images[0]!.infotext).toContain("VAE: scaled-diffusers.safetensors");
      await expect(pipe.generate({ ...params, vae: join(dir, "missing.safetensors") })).rejects.toThrow(
        /cannot open the VAE/,
      );
    } finally {
      await pipe.close();
    }
  });

  it("refuses a VAE of another latent space or scaling factor, naming both and the fix", async () => {
    const wide = join(dir, "flux-like.safetensors");
    const f = new Float32Array(32 * 16 * 9);
    writeFileSync(
      wide,
      encodeSafetensors([{ name: "decoder.conv_in.weight", dtype: "F32", shape: [32, 16, 3, 3], data: f32Bytes(f) }]),
    );
    await expect(loadPipeline(model, { cacheDir, threads: 1, vae: wide })).rejects.toThrow(
      /works with 16-channel latents but the model's have 4: use a VAE of the model's family/,
    );
    const sdxl = join(dir, "sdxl-vae");
    mkdirSync(sdxl);
    copyFileSync(files.diffusers, join(sdxl, "diffusion_pytorch_model.safetensors"));
    const config = JSON.parse(readFileSync(ref("models/sd15-tiny/vae/config.json"), "utf8"));
    writeFileSync(join(sdxl, "config.json"), JSON.stringify({ ...config, scaling_factor: 0.13025 }));
    await expect(loadPipeline(model, { cacheDir, threads: 1, vae: sdxl })).rejects.toThrow(
      /scaling factor 0.13025 but the model's latents are scaled by 0.18215/,
    );
    const partial = join(dir, "partial.safetensors");
    writeFileSync(
      partial,
      encodeSafetensors([
        {
          name: "decoder.conv_in.weight",
          dtype: "F32",
          shape: [32, 4, 3, 3],
          data: f32Bytes(new Float32Array(32 * 36)),
        },
      ]),
    );
    await expect(loadPipeline(model, { cacheDir, threads: 1, vae: partial })).rejects.toThrow(
      /VAE tensor\(s\) missing/,
    );
  });
});
