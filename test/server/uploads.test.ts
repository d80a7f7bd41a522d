import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError, JobCreated } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { pngChunk, solidPng, withChunks, zTxtBombs } from "../helpers/png-bombs.js";
import { pngBase64, postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

/**
 * Uploaded images are decompression-bomb material: a few KB that declare 16383x16383 pixels, or text chunks that
 * inflate a thousandfold. Both APIs must refuse the first by its declared size before decoding (the largest
 * generation is 2048x2048, so an upload may declare at most 4096x4096) and never inflate the second.
 */
describe.skipIf(!HAVE_REFERENCE)("image uploads on both APIs", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  const huge = solidPng(16383, 16383).toString("base64");
  let small: string;
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path, previewIntervalMs: 0 });
    small = await pngBase64(64, 64, [200, 30, 30]);
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("our API refuses a 16383x16383 init image or mask with 400 naming the field, its size and the limit", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ type: "img2img", init_image: huge }, "init_image"],
      [{ type: "inpaint", init_image: small, mask: `data:image/png;base64,${huge}` }, "mask"],
    ];
    for (const [body, field] of cases) {
      const r = await postJson<ApiError>(`${s.base}/api/v1/jobs`, { prompt: "x", steps: 2, ...body });
      expect(r.status).toBe(400);
      expect(r.body.field).toBe(field);
      expect(r.body.message).toContain("16383x16383");
      expect(r.body.message).toContain("4096x4096");
    }
  });

  it("the A1111 API refuses a 16383x16383 init image or mask (blurred by default) with 400 naming the field and the limit", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ init_images: [huge] }, "init_images.0"],
      [{ init_images: [small], mask: huge }, "mask"],
    ];
    for (const [body, field] of cases) {
      const r = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/img2img`, { prompt: "x", steps: 2, ...body });
      expect(r.status).toBe(400);
      expect(r.body.detail).toMatch(new RegExp(`^${field.replace(".", "\\.")}: `));
      expect(r.body.detail).toContain("16383x16383");
      expect(r.body.detail).toContain("4096x4096");
    }
  });

  // The timeout only keeps a regression from running for minutes: this takes a few seconds.
  it("accepts uploads whose PNG text would inflate to 1.5 GB and runs the jobs, never inflating it", {
    timeout: 60_000,
  }, async () => {
    // 100 zTXt chunks of 15 MB each: libvips inflates them all while reading the header (about a minute and
    // several GB here), so they are dropped at the door and the rest of the file is used as sent.
    const base = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#ffffff" } })
      .png()
      .toBuffer();
    const bomb = withChunks(base, zTxtBombs(100, 15 * 2 ** 20)).toString("base64");
    const ours = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      type: "inpaint",
      prompt: "x",
      steps: 2,
      init_image: bomb,
      mask: bomb,
    });
    expect(ours.status).toBe(202);
    expect((await waitForJob(s.base, ours.body.id)).state).toBe("done");
    const a1111 = await postJson<{ images: string[] }>(`${s.base}/sdapi/v1/img2img`, {
      prompt: "x",
      steps: 2,
      width: 64,
      height: 64,
      init_images: [bomb],
      mask: bomb,
      mask_blur: 4,
    });
    expect(a1111.status).toBe(200);
    expect(a1111.body.images).toHaveLength(1);
  });

  it("png-info refuses text chunks that inflate past 16 MiB in all with 400 naming the limit", async () => {
    const base = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#000000" } })
      .png()
      .toBuffer();
    const six = deflateSync(Buffer.alloc(6 * 2 ** 20, 0x41));
    const bombs = [0, 1, 2].map((i) => pngChunk("zTXt", Buffer.concat([Buffer.from(`k${i}\0\0`, "latin1"), six])));
    const r = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/png-info`, {
      image: withChunks(base, bombs).toString("base64"),
    });
    expect(r.status).toBe(400);
    expect(r.body.detail).toMatch(/inflate past 16777216 bytes/);
  });
});
