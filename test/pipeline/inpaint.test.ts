import { describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { encodeSafetensors, f32Bytes } from "../weights/safetensors-writer.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-inpaint-"));

async function pattern(): Promise<Buffer> {
  const px = Buffer.alloc(64 * 64 * 3);
  for (let y = 0; y < 64; y++)
    for (let x = 0; x < 64; x++) px.set([(4 * x) % 256, (4 * y) % 256, (2 * (x + y) + 40) % 256], (y * 64 + x) * 3);
  return sharp(px, { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toBuffer();
}

/** White (repaint) where x < split, black (keep) elsewhere. */
async function leftMask(split: number): Promise<Buffer> {
  const px = Buffer.alloc(64 * 64);
  for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) px[y * 64 + x] = x < split ? 255 : 0;
  return sharp(px, { raw: { width: 64, height: 64, channels: 1 } })
    .png()
    .toBuffer();
}

async function finalLatents(
  model: string,
  params: Parameters<Awaited<ReturnType<typeof loadPipeline>>["generate"]>[0],
  opts: { config?: string; tokenizer?: string } = {},
): Promise<Float32Array> {
  const pipe = await loadPipeline(model, { cacheDir, threads: 1, ...opts });
  let last: Float32Array | undefined;
  await pipe.generate({ ...params, onStep: (e) => (last = e.latents.slice()) });
  await pipe.close();
  return last!;
}

describe.skipIf(!HAVE_REFERENCE)("inpainting", () => {
  const base = {
    prompt: "a photo of an astronaut",
    steps: 6,
    cfgScale: 7.5,
    seed: 3,
    sampler: "euler",
    width: 64,
    height: 64,
  };

  it("ordinary checkpoints keep the unmasked latents exactly and repaint the masked ones", async () => {
    const init = await pattern();
    const common = { ...base, initImage: init, denoisingStrength: 0.75 };
    const keepAll = await finalLatents(ref("models/sd15-tiny"), { ...common, mask: await leftMask(0) });
    const half = await finalLatents(ref("models/sd15-tiny"), { ...common, mask: await leftMask(32) });
    let keptSame = 0,
      repaintedDiffer = 0;
    for (let c = 0; c < 4; c++)
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          const i = c * 64 + y * 8 + x;
          if (x >= 4) keptSame += Number(half[i] === keepAll[i]);
          else repaintedDiffer += Number(Math.abs(half[i]! - keepAll[i]!) > 1e-3);
        }
    expect(keptSame).toBe(4 * 8 * 4);
    expect(repaintedDiffer).toBeGreaterThan(4 * 8 * 4 * 0.9);
  });

  it("9-channel inpainting checkpoints feed mask and masked-image latents to the UNet", async () => {
    // sd15-tiny widened to 9 input channels with zero weights on the 5 new ones must give txt2img's latents
    // exactly (at strength 1 an inpainting run starts from pure noise), and non-zero weights must change them.
    const dir = mkdtempSync(join(tmpdir(), "diffuse-inpaint9-"));
    cpSync(ref("models/sd15-tiny"), dir, { recursive: true });
    const unetFile = join(dir, "unet/diffusion_pytorch_model.safetensors");
    const widen = (extraValue: (i: number) => number) => {
      const src = SafetensorsFile.open(ref("models/sd15-tiny/unet/diffusion_pytorch_model.safetensors"));
      const tensors = src.keys().map((name) => {
        const shape = [...src.info(name).shape];
        let data = src.float32(name);
        if (name === "conv_in.weight") {
          const [o, , kh, kw] = shape as [number, number, number, number];
          const wide = new Float32Array(o * 9 * kh * kw);
          for (let oc = 0; oc < o; oc++)
            for (let ic = 0; ic < 9; ic++)
              for (let k = 0; k < kh * kw; k++) {
                wide[(oc * 9 + ic) * kh * kw + k] =
                  ic < 4 ? data[(oc * 4 + ic) * kh * kw + k]! : extraValue(oc + ic + k);
              }
          data = wide;
          shape[1] = 9;
        }
        return { name, dtype: "F32" as const, shape, data: f32Bytes(data) };
      });
      src.close();
      writeFileSync(unetFile, encodeSafetensors(tensors));
      const config = JSON.parse(readFileSync(join(dir, "unet/config.json"), "utf8"));
      writeFileSync(join(dir, "unet/config.json"), JSON.stringify({ ...config, in_channels: 9 }));
    };
    const init = await pattern();
    const mask = await leftMask(32);
    const txt2img = await finalLatents(ref("models/sd15-tiny"), base);
    widen(() => 0);
    const zeroWide = await finalLatents(dir, { ...base, initImage: init, mask, denoisingStrength: 1 });
    let maxDiff = 0;
    for (let i = 0; i < txt2img.length; i++) maxDiff = Math.max(maxDiff, Math.abs(zeroWide[i]! - txt2img[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    widen((i) => 0.05 * Math.sin(i));
    const wide = await finalLatents(dir, { ...base, initImage: init, mask, denoisingStrength: 1 });
    let changed = 0;
    for (let i = 0; i < txt2img.length; i++) changed = Math.max(changed, Math.abs(wide[i]! - txt2img[i]!));
    expect(changed).toBeGreaterThan(1e-2);
  });
});
