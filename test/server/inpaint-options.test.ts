import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { getPngText } from "../../src/image/png-text.js";
import type { JobCreated } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

/** A pattern whose every pixel differs from its neighbours, so a repainted one shows. */
async function pattern(w: number, h: number): Promise<{ b64: string; px: Buffer }> {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) px.set([(i * 7) % 256, (i * 3) % 256, (i % w) * 2], i * 3);
  const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
  return { b64: png.toString("base64"), px };
}

async function maskB64(w: number, h: number, on: (x: number, y: number) => boolean): Promise<string> {
  const px = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = on(x, y) ? 255 : 0;
  return (
    await sharp(px, { raw: { width: w, height: h, channels: 1 } })
      .png()
      .toBuffer()
  ).toString("base64");
}

async function pixels(b64: string): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(Buffer.from(b64, "base64"))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

describe.skipIf(!HAVE_REFERENCE)("inpainting options on both APIs", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    // No watermark and no safety checker: the pixels the mask keeps can then be compared exactly.
    s = await startServer({
      cacheDir: cache.path,
      loadOptions: { threads: 1, cacheDir: cache.path, watermark: false, safetyChecker: false },
    });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  type Img2Img = { images: string[]; info: string; parameters: Record<string, unknown> };

  it("A1111: a mask of another size is stretched; by default only the masked region is inpainted and pasted back", async () => {
    const init = await pattern(96, 64);
    // 48x32, stretched to 96x64: a 16x16 square at (40, 24).
    const mask = await maskB64(48, 32, (x, y) => x >= 20 && x < 28 && y >= 12 && y < 20);
    const r = await postJson<Img2Img>(`${s.base}/sdapi/v1/img2img`, {
      prompt: "a boat",
      init_images: [init.b64],
      mask,
      mask_blur: 0,
      steps: 3,
      seed: 4,
      width: 32,
      height: 32,
    });
    expect(r.status).toBe(200);
    const info = JSON.parse(r.body.info);
    expect(info.extra_generation_params).toMatchObject({
      "Inpaint area": "Only masked",
      "Masked area padding": 0,
      "Masked content": "fill",
    });
    expect(info.extra_generation_params["Mask blur"]).toBeUndefined();
    const out = await pixels(r.body.images[0]!);
    expect([out.width, out.height]).toEqual([96, 64]);
    // The stretch's filter reaches 3 mask pixels (6 image pixels) past the square; beyond, the init image exactly.
    let changed = 0;
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 96; x++) {
        const i = (y * 96 + x) * 3;
        const same = out.data.subarray(i, i + 3).equals(init.px.subarray(i, i + 3));
        if (x < 34 || x >= 62 || y < 18 || y >= 46) expect(same, `${x},${y}`).toBe(true);
        else if (x >= 42 && x < 54 && y >= 26 && y < 38 && !same) changed++;
      }
    expect(changed).toBeGreaterThan(100);
  });

  it("A1111: the whole picture with the original content, per-axis blurs and an inverted mask", async () => {
    const init = await pattern(64, 64);
    const r = await postJson<Img2Img>(`${s.base}/sdapi/v1/img2img`, {
      prompt: "a boat",
      init_images: [init.b64],
      mask: await maskB64(64, 64, (x) => x >= 16),
      inpaint_full_res: 0,
      inpainting_fill: 1,
      inpainting_mask_invert: 1,
      mask_blur_x: 2,
      mask_blur_y: 3,
      steps: 3,
      width: 64,
      height: 64,
    });
    expect(r.status).toBe(200);
    const extra = JSON.parse(r.body.info).extra_generation_params;
    expect(extra).toMatchObject({ "Mask mode": "Inpaint not masked" });
    for (const key of ["Inpaint area", "Masked content", "Mask blur"]) expect(extra[key], key).toBeUndefined();
    // Inverted: columns 0..15 are repainted, and the blur (2 * int(5.5) / 2 = 5 columns) does not reach 22 on.
    const out = await pixels(r.body.images[0]!);
    for (let y = 0; y < 64; y++)
      for (let x = 22; x < 64; x++) {
        const i = (y * 64 + x) * 3;
        expect(out.data.subarray(i, i + 3).equals(init.px.subarray(i, i + 3)), `${x},${y}`).toBe(true);
      }
  });

  it("A1111: refuses a padding out of range as a validation error on the field", async () => {
    const init = await pattern(64, 64);
    const r = await postJson<{ detail: { loc: string[] }[] }>(`${s.base}/sdapi/v1/img2img`, {
      prompt: "x",
      init_images: [init.b64],
      mask: await maskB64(64, 64, () => true),
      inpaint_full_res_padding: 300,
    });
    expect(r.status).toBe(422);
    expect(r.body.detail[0]!.loc).toEqual(["body", "inpaint_full_res_padding"]);
  });

  it("our API: an inpaint job takes the mask options, a mask of another size, and records what ran", async () => {
    const init = await pattern(64, 64);
    const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      type: "inpaint",
      prompt: "a boat",
      steps: 3,
      init_image: init.b64,
      mask: await maskB64(32, 32, (x, y) => x >= 8 && x < 24 && y >= 8 && y < 24),
      mask_blur: 1,
      inpainting_fill: "latent noise",
      inpaint_full_res: true,
      inpaint_full_res_padding: 6,
    });
    expect(created.status).toBe(202);
    const done = await waitForJob(s.base, created.body.id);
    expect(done.state).toBe("done");
    expect(done.params).toMatchObject({
      has_mask: true,
      mask_blur: 1,
      inpainting_mask_invert: false,
      inpainting_fill: "latent noise",
      inpaint_full_res: true,
      inpaint_full_res_padding: 6,
    });
    const png = new Uint8Array(await (await fetch(`${s.base}${done.images[0]!.url}`)).arrayBuffer());
    expect(getPngText(png, "parameters")).toMatch(
      /Mask blur: 1, Masked content: latent noise, Inpaint area: Only masked, Masked area padding: 6/,
    );
    const bad = await postJson<{ field: string }>(`${s.base}/api/v1/jobs`, {
      type: "inpaint",
      prompt: "x",
      init_image: init.b64,
      mask: init.b64,
      inpainting_fill: "blur",
    });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe("inpainting_fill");
  });
});
