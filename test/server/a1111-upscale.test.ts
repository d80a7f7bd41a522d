/**
 * A1111's upscaler routes: /sdapi/v1/upscalers lists UpscalerItems (A1111's three resize upscalers, then the model
 * files of the folders), /sdapi/v1/extra-single-image and /extra-batch-images answer {html_info, image(s)} with
 * images of the requested size carrying A1111's postprocess infotext, the watermark and a C2PA manifest; bad
 * requests get A1111's error shapes.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePng } from "../../src/image/codec.js";
import { readPngText } from "../../src/image/png-text.js";
import { verifyImage } from "../../src/responsible/provenance/verify-image.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, type TestServer, tempDir } from "./harness.js";

let server: TestServer;
let folder: { path: string; remove: () => void };
let png: string;

beforeAll(async () => {
  folder = tempDir("diffuse-upscale-routes-");
  const webui = join(folder.path, "webui");
  mkdirSync(join(webui, "models", "Stable-diffusion"), { recursive: true });
  mkdirSync(join(webui, "models", "RealESRGAN"), { recursive: true });
  copyFileSync(join(OWN_FIXTURES, "rrdbnet", "x4-new.pth"), join(webui, "models", "RealESRGAN", "tiny-x4plus.pth"));
  server = await startServer({
    models: {
      home: join(folder.path, "home"),
      cacheDir: join(folder.path, "hf"),
      modelsDirs: [webui],
      searchDefaults: false,
    },
  });
  const data = Uint8Array.from({ length: 24 * 20 * 3 }, (_, i) => (i * 37) % 256);
  png = (await encodePng({ width: 24, height: 20, data })).toString("base64");
});

afterAll(async () => {
  await server.close();
  folder.remove();
});

describe("A1111 upscaler routes", () => {
  it("GET /sdapi/v1/upscalers: UpscalerItems, model files by name", async () => {
    const list = await getJson<Record<string, unknown>[]>(`${server.base}/sdapi/v1/upscalers`);
    expect(list.map((u) => u.name)).toEqual(["None", "Lanczos", "Nearest", "tiny-x4plus"]);
    expect(list[0]).toEqual({ name: "None", model_name: null, model_path: null, model_url: null, scale: 4 });
    expect(list[3]).toMatchObject({ model_name: "RealESRGAN", model_url: null, scale: 4 });
    expect(list[3]!.model_path).toMatch(/models\/RealESRGAN\/tiny-x4plus\.pth$/);
  });

  it("POST extra-single-image with the model: image of 4x the size, infotext, html_info, watermark and C2PA", async () => {
    const r = await postJson<{ html_info: string; image: string }>(`${server.base}/sdapi/v1/extra-single-image`, {
      image: png,
      upscaler_1: "tiny-x4plus",
      upscaling_resize: 4,
    });
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(["html_info", "image"]);
    expect(r.body.html_info).toBe(
      "<p>Postprocess upscale by: 4, Postprocess upscaler: tiny-x4plus, Watermark: none (image smaller than 128x128)</p>",
    );
    const bytes = Buffer.from(r.body.image, "base64");
    const meta = await sharp(bytes).metadata();
    expect([meta.width, meta.height]).toEqual([96, 80]);
    expect(readPngText(bytes).find((c) => c.keyword === "extras")!.text).toMatch(/^Postprocess upscale by: 4, /);
    expect((await verifyImage(bytes)).manifestFound).toBe(true);
  });

  it("POST extra-batch-images: resize_mode 1 to a size with crop, a blended second upscaler; show_extras_results false sends no images", async () => {
    const body = {
      imageList: [
        { data: png, name: "a.png" },
        { data: png, name: "b.png" },
      ],
      resize_mode: 1,
      upscaling_resize_w: 50,
      upscaling_resize_h: 30,
      upscaler_1: "Lanczos",
      upscaler_2: "Nearest",
      extras_upscaler_2_visibility: 0.5,
    };
    const r = await postJson<{ html_info: string; images: string[] }>(
      `${server.base}/sdapi/v1/extra-batch-images`,
      body,
    );
    expect(r.status).toBe(200);
    expect(r.body.images).toHaveLength(2);
    for (const b of r.body.images) {
      const meta = await sharp(Buffer.from(b, "base64")).metadata();
      expect([meta.width, meta.height]).toEqual([50, 30]);
    }
    expect(r.body.html_info).toMatch(
      /^<p>Postprocess upscale to: 50x30, Postprocess crop to: 50x30, Postprocess upscaler: Lanczos, Postprocess upscaler 2: Nearest/,
    );
    const hidden = await postJson<{ images: string[] }>(`${server.base}/sdapi/v1/extra-batch-images`, {
      ...body,
      show_extras_results: false,
    });
    expect(hidden.body.images).toEqual([]);
  });

  it("refuses an unknown upscaler, face restoration, a factor past 8, and bad fields with A1111's shapes", async () => {
    const unknown = await postJson<{ detail: string }>(`${server.base}/sdapi/v1/extra-single-image`, {
      image: png,
      upscaler_1: "4x-UltraSharp",
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.detail).toMatch(
      /no upscaler named "4x-UltraSharp"; available: None, Lanczos, Nearest, tiny-x4plus/,
    );
    const face = await postJson<{ detail: string }>(`${server.base}/sdapi/v1/extra-single-image`, {
      image: png,
      gfpgan_visibility: 0.5,
    });
    expect(face.status).toBe(400);
    expect(face.body.detail).toMatch(/face restoration/);
    const big = await postJson<{ detail: string }>(`${server.base}/sdapi/v1/extra-single-image`, {
      image: png,
      upscaler_1: "Lanczos",
      upscaling_resize: 9,
    });
    expect(big.status).toBe(400);
    expect(big.body.detail).toMatch(/at most 8/);
    const invalid = await postJson<{ detail: { loc: string[] }[] }>(`${server.base}/sdapi/v1/extra-single-image`, {
      image: png,
      resize_mode: 2,
    });
    expect(invalid.status).toBe(422);
    expect(invalid.body.detail[0]!.loc).toEqual(["body", "resize_mode"]);
    const notImage = await postJson<{ detail: string }>(`${server.base}/sdapi/v1/extra-single-image`, {
      image: "aGVsbG8=",
      upscaler_1: "Lanczos",
    });
    expect(notImage.status).toBe(400);
  });
});
