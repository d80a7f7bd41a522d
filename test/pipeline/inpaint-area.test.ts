import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import { fillMaskedLatents } from "../../src/pipeline/inpainting.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

/** An RGB pattern of any size, every pixel distinct enough that a repainted one shows. */
async function pattern(w: number, h: number, shift = 0): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      px.set([(5 * x + shift) % 256, (7 * y) % 256, (3 * (x + y) + 60) % 256], (y * w + x) * 3);
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

/** A greyscale mask PNG: 255 where `on`, 0 elsewhere. */
async function maskPng(w: number, h: number, on: (x: number, y: number) => boolean): Promise<Buffer> {
  const px = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = on(x, y) ? 255 : 0;
  return sharp(px, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toBuffer();
}

async function rgb(png: Buffer): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

describe("fillMaskedLatents", () => {
  it("puts noise or zeros where the latents are masked, weighted by the keep mask", () => {
    const init = Float32Array.from([1, 2, 3, 4]);
    const keep = Float32Array.from([1, 0, 0.25, 0]);
    const noise = Float32Array.from([10, 20, 30, 40]);
    expect(Array.from(fillMaskedLatents(init, keep, "latent noise", noise))).toEqual([1, 20, 0.75 + 22.5, 40]);
    expect(Array.from(fillMaskedLatents(init, keep, "latent nothing", noise))).toEqual([1, 0, 0.75, 0]);
  });
});

describe.skipIf(!HAVE_REFERENCE)("inpainting as A1111 prepares it", () => {
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir: mkdtempSync(join(tmpdir(), "diffuse-inpaint-area-")),
      threads: 1,
    });
  }, 120_000);
  afterAll(async () => pipe?.close());

  const base = {
    prompt: "a red boat",
    steps: 4,
    cfgScale: 7,
    seed: 5,
    sampler: "euler",
    denoisingStrength: 0.8,
  };

  async function run(p: Partial<GenerateParams>) {
    let latents: Float32Array | undefined;
    const r = await pipe.generate({ ...base, ...p, onStep: (e) => (latents = e.latents.slice()) } as GenerateParams);
    return { latents: latents!, image: r.images[0]!, png: await rgb(await r.images[0]!.png()) };
  }

  it("stretches a mask of another size to the init image instead of refusing it", async () => {
    const init = await pattern(64, 64);
    const small = await run({ width: 64, height: 64, initImage: init, mask: await maskPng(32, 48, () => true) });
    const same = await run({ width: 64, height: 64, initImage: init, mask: await maskPng(64, 64, () => true) });
    expect(Array.from(small.latents)).toEqual(Array.from(same.latents));
  });

  it("inverts the mask: repainting what it keeps is the same as the opposite mask", async () => {
    const init = await pattern(64, 64);
    const left = (x: number) => x < 24;
    const inverted = await run({
      width: 64,
      height: 64,
      initImage: init,
      mask: await maskPng(64, 64, (x) => !left(x)),
      invertMask: true,
    });
    const plain = await run({ width: 64, height: 64, initImage: init, mask: await maskPng(64, 64, left) });
    expect(Array.from(inverted.latents)).toEqual(Array.from(plain.latents));
    expect(inverted.image.infotext).toMatch(/Mask mode: Inpaint not masked/);
    expect(plain.image.infotext).not.toMatch(/Mask mode/);
  });

  it("keeps every pixel the blurred mask does not touch exactly as in the init image", async () => {
    const init = await pattern(64, 64);
    const inBox = (x: number, y: number) => x >= 20 && x < 40 && y >= 16 && y < 36;
    const out = await run({
      width: 64,
      height: 64,
      initImage: init,
      mask: await maskPng(64, 64, inBox),
      maskBlur: 2,
    });
    const original = await rgb(init);
    // A blur of sigma 2 reaches 2 * int(5.5) / 2 = 5 pixels past the box.
    const touched = (x: number, y: number) => x >= 15 && x < 45 && y >= 11 && y < 41;
    let changed = 0;
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 64; x++) {
        const i = (y * 64 + x) * 3;
        const a = Array.from(out.png.data.subarray(i, i + 3));
        const b = Array.from(original.data.subarray(i, i + 3));
        if (!touched(x, y)) expect(a, `${x},${y}`).toEqual(b);
        else if (inBox(x, y) && a.some((v, c) => Math.abs(v - b[c]!) > 3)) changed++;
      }
    expect(changed).toBeGreaterThan(20 * 20 * 0.5);
    expect(out.image.infotext).toMatch(/Mask blur: 2,/);
  });

  it("only masked: inpaints the padded region at the generation size and pastes it into the init image", async () => {
    // A 96x64 init with a 12x8 stroke at (60, 40); padding 4 gives 20x16 at (56, 36), grown to the square of the
    // 32x32 generation: 20x20 at (56, 34).
    const init = await pattern(96, 64, 17);
    const stroke = (x: number, y: number) => x >= 60 && x < 72 && y >= 40 && y < 48;
    const mask = await maskPng(96, 64, stroke);
    const out = await run({
      width: 32,
      height: 32,
      initImage: init,
      mask,
      inpaintFullRes: true,
      inpaintFullResPadding: 4,
    });
    expect([out.png.width, out.png.height]).toEqual([96, 64]);
    expect(out.image.infotext).toMatch(/Inpaint area: Only masked, Masked area padding: 4/);
    expect(out.image.infotext).toMatch(/Size: 32x32/);
    // The same generation on the region cut out and scaled here, as a whole picture of 32x32.
    const region = { left: 56, top: 34, width: 20, height: 20 };
    const cut = async (png: Buffer) => sharp(png).extract(region).resize(32, 32, { fit: "fill" }).png().toBuffer();
    const direct = await run({ width: 32, height: 32, initImage: await cut(init), mask: await cut(mask) });
    expect(Array.from(out.latents)).toEqual(Array.from(direct.latents));
    // Outside the stroke, the init image's pixels exactly.
    const original = await rgb(init);
    let changed = 0;
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 96; x++) {
        const i = (y * 96 + x) * 3;
        const a = Array.from(out.png.data.subarray(i, i + 3));
        const b = Array.from(original.data.subarray(i, i + 3));
        if (!stroke(x, y)) expect(a, `${x},${y}`).toEqual(b);
        else if (a.some((v, c) => Math.abs(v - b[c]!) > 3)) changed++;
      }
    expect(changed).toBeGreaterThan(12 * 8 * 0.5);
  });

  it("only masked: the generated image, scaled back to the region, is what the region shows", async () => {
    // A square stroke with no padding is its own region: its pixels are the 32x32 generation scaled to 20x20.
    const init = await pattern(96, 64, 17);
    const square = (x: number, y: number) => x >= 56 && x < 76 && y >= 34 && y < 54;
    const p = { width: 32, height: 32, initImage: init, mask: await maskPng(96, 64, square) };
    const out = await run({ ...p, inpaintFullRes: true, inpaintFullResPadding: 0 });
    const region = { left: 56, top: 34, width: 20, height: 20 };
    const cut = await sharp(init).extract(region).resize(32, 32, { fit: "fill" }).png().toBuffer();
    const direct = await run({ ...p, initImage: cut, mask: await maskPng(32, 32, () => true) });
    expect(Array.from(out.latents)).toEqual(Array.from(direct.latents));
    const scaled = await rgb(
      await sharp(await direct.image.png())
        .resize(20, 20, { fit: "fill" })
        .png()
        .toBuffer(),
    );
    const original = await rgb(init);
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 96; x++) {
        const i = (y * 96 + x) * 3;
        const expected = square(x, y)
          ? scaled.data.subarray(((y - 34) * 20 + x - 56) * 3, ((y - 34) * 20 + x - 56) * 3 + 3)
          : original.data.subarray(i, i + 3);
        expect(Array.from(out.png.data.subarray(i, i + 3)), `${x},${y}`).toEqual(Array.from(expected));
      }
  });

  it("latent noise, latent nothing and fill repaint a fully masked image without looking at it; original does", async () => {
    const all = await maskPng(64, 64, () => true);
    const a = await pattern(64, 64);
    const b = await pattern(64, 64, 128);
    const latents = async (fill: GenerateParams["inpaintingFill"], init: Buffer) =>
      Array.from((await run({ width: 64, height: 64, initImage: init, mask: all, inpaintingFill: fill })).latents);
    for (const fill of ["latent noise", "latent nothing", "fill"] as const)
      expect(await latents(fill, a), fill).toEqual(await latents(fill, b));
    expect(await latents("original", a)).not.toEqual(await latents("original", b));
    expect(await latents("latent noise", a)).not.toEqual(await latents("latent nothing", a));
    const noise = await run({ width: 64, height: 64, initImage: a, mask: all, inpaintingFill: 2 });
    expect(noise.image.infotext).toMatch(/Masked content: latent noise/);
  });

  it("refuses an unknown fill and a padding out of range, naming the values", async () => {
    const init = await pattern(64, 64);
    const mask = await maskPng(64, 64, () => true);
    await expect(pipe.generate({ ...base, initImage: init, mask, inpaintingFill: "blur" as never })).rejects.toThrow(
      /inpainting fill "blur" is unknown: use "fill", "original", "latent noise", "latent nothing"/,
    );
    await expect(
      pipe.generate({ ...base, initImage: init, mask, inpaintFullRes: true, inpaintFullResPadding: 999 }),
    ).rejects.toThrow(/padding 999 is invalid: use an integer from 0 to 256/);
  });
});
