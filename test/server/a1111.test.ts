import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { encodeImage } from "../../src/image/encode-image.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { pngBase64, startServer, tempDir, type TestServer } from "./harness.js";

/**
 * A client written only against AUTOMATIC1111's documented API (its /docs: field names, response shapes):
 * nothing here knows about our job ids or our own API.
 */
class A1111Client {
  constructor(private readonly base: string) {}
  async call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, json: (await r.json()) as T };
  }
  txt2img(payload: Record<string, unknown>) {
    return this.call<{ images: string[]; parameters: Record<string, unknown>; info: string }>(
      "POST",
      "/sdapi/v1/txt2img",
      payload,
    );
  }
  img2img(payload: Record<string, unknown>) {
    return this.call<{ images: string[]; parameters: Record<string, unknown>; info: string }>(
      "POST",
      "/sdapi/v1/img2img",
      payload,
    );
  }
  pngInfo(image: string) {
    return this.call<{ info: string; items: Record<string, unknown>; parameters: Record<string, unknown> }>(
      "POST",
      "/sdapi/v1/png-info",
      { image },
    );
  }
}

describe.skipIf(!HAVE_REFERENCE)("the AUTOMATIC1111-compatible API, used as an A1111 client would", () => {
  let s: TestServer;
  let api: A1111Client;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path });
    api = new A1111Client(s.base);
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("txt2img returns base64 PNGs, echoes the request (unknown fields too) and an A1111 info JSON string", async () => {
    const payload = {
      prompt: "a lighthouse at dusk",
      negative_prompt: "blurry",
      steps: 5,
      cfg_scale: 7,
      width: 64,
      height: 64,
      sampler_name: "DPM++ 2M",
      scheduler: "Karras",
      seed: 1234,
      batch_size: 2,
      n_iter: 1,
      restore_faces: false,
      enable_hr: false,
      my_plugin_field: { keep: "me" },
    };
    const r = await api.txt2img(payload);
    expect(r.status).toBe(200);
    expect(r.json.images).toHaveLength(2);
    for (const b64 of r.json.images) {
      const meta = await sharp(Buffer.from(b64, "base64")).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["png", 64, 64]);
    }
    expect(r.json.parameters).toMatchObject(payload);
    expect(r.json.parameters).toMatchObject({ subseed: -1, send_images: true });
    expect(typeof r.json.info).toBe("string");
    const info = JSON.parse(r.json.info) as Record<string, unknown>;
    expect(info).toMatchObject({
      prompt: payload.prompt,
      negative_prompt: "blurry",
      seed: 1234,
      all_seeds: [1234, 1235],
      steps: 5,
      width: 64,
      height: 64,
      sampler_name: "DPM++ 2M Karras",
      sd_model_name: "sd15-tiny",
    });
    expect((info["infotexts"] as string[])[0]).toContain("Seed: 1234");
  });

  it("png-info parses the infotext of a txt2img image the way A1111 does", async () => {
    const r = await api.txt2img({
      prompt: "a cat, (smiling:1.2)",
      negative_prompt: "dog",
      steps: 3,
      seed: 77,
      width: 64,
      height: 64,
    });
    const info = await api.pngInfo(r.json.images[0]!);
    expect(info.status).toBe(200);
    expect(info.json.info).toBe((JSON.parse(r.json.info) as { infotexts: string[] }).infotexts[0]);
    expect(info.json.parameters).toMatchObject({
      Prompt: "a cat, (smiling:1.2)",
      "Negative prompt": "dog",
      Steps: "3",
      Seed: "77",
      Sampler: "Euler",
      "Size-1": "64",
      "Size-2": "64",
    });
    const dataUrl = await api.pngInfo(`data:image/png;base64,${r.json.images[0]}`);
    expect(dataUrl.json.info).toBe(info.json.info);
  });

  it("png-info reads the infotext of a JPEG or WebP from its EXIF UserComment, as A1111 stores it there", async () => {
    const image = { width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(128) };
    const infotext =
      "a fox, snow\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 5, Seed: 12, Size: 8x8";
    for (const format of ["jpeg", "webp"] as const) {
      const info = await api.pngInfo((await encodeImage(image, format, infotext)).toString("base64"));
      expect([format, info.status, info.json.info]).toEqual([format, 200, infotext]);
      expect(info.json.parameters).toMatchObject({
        Prompt: "a fox, snow",
        "Negative prompt": "blurry",
        Steps: "4",
        Seed: "12",
      });
    }
  });

  it("img2img with init_images, denoising_strength and a mask (inpainting) returns images", async () => {
    const init = await pngBase64(64, 64, [30, 120, 220]);
    const mask = await pngBase64(64, 64, [255, 255, 255]);
    const plain = await api.img2img({
      prompt: "a boat",
      init_images: [init],
      denoising_strength: 0.6,
      steps: 5,
      seed: 9,
      width: 64,
      height: 64,
    });
    expect(plain.status).toBe(200);
    expect(plain.json.images).toHaveLength(1);
    expect(plain.json.parameters).toMatchObject({ init_images: null, mask: null, denoising_strength: 0.6 });
    expect(JSON.parse(plain.json.info)).toMatchObject({ denoising_strength: 0.6, seed: 9 });
    const masked = await api.img2img({
      prompt: "a boat",
      init_images: [`data:image/png;base64,${init}`],
      mask,
      mask_blur: 4,
      inpainting_fill: 1,
      inpainting_mask_invert: 0,
      denoising_strength: 0.75,
      steps: 5,
      width: 64,
      height: 64,
    });
    expect(masked.status).toBe(200);
    expect((await sharp(Buffer.from(masked.json.images[0]!, "base64")).metadata()).format).toBe("png");
  });

  it("reports validation errors as FastAPI does (422 with detail[].loc) and unknown samplers as 404", async () => {
    const bad = await api.call<{ detail: { loc: string[]; msg: string }[] }>("POST", "/sdapi/v1/txt2img", {
      prompt: "x",
      steps: "many",
    });
    expect(bad.status).toBe(422);
    expect(bad.json.detail[0]!.loc).toEqual(["body", "steps"]);
    const sampler = await api.call<{ detail: string }>("POST", "/sdapi/v1/txt2img", {
      prompt: "x",
      sampler_name: "Nonexistent",
    });
    expect(sampler.status).toBe(404);
    expect(sampler.json.detail).toMatch(/Sampler not found/);
    const noInit = await api.call<{ detail: string }>("POST", "/sdapi/v1/img2img", { prompt: "x" });
    expect(noInit.status).toBe(404);
  });

  it("progress shows a running job with a current image, and interrupt stops it", async () => {
    const idle = await api.call<{
      progress: number;
      eta_relative: number;
      state: Record<string, unknown>;
      current_image: string | null;
    }>("GET", "/sdapi/v1/progress");
    expect(idle.json).toMatchObject({ progress: 0, eta_relative: 0, current_image: null });
    expect(idle.json.state).toMatchObject({ job_count: 0, sampling_step: 0 });
    const pending = api.txt2img({ prompt: "slow", steps: 150, width: 64, height: 64 });
    type Progress = {
      progress: number;
      state: { sampling_step: number; sampling_steps: number };
      current_image: string | null;
    };
    let seen: Progress | undefined;
    for (let i = 0; i < 500 && !seen; i++) {
      const p = await api.call<Progress>("GET", "/sdapi/v1/progress");
      if (p.json.state.sampling_step >= 3 && p.json.current_image) seen = p.json;
      else await new Promise((r) => setTimeout(r, 10));
    }
    expect(seen).toBeDefined();
    expect(seen!.progress).toBeGreaterThan(0);
    expect(seen!.progress).toBeLessThan(1);
    expect(seen!.state.sampling_steps).toBe(150);
    expect((await sharp(Buffer.from(seen!.current_image!, "base64")).metadata()).format).toBe("png");
    const interrupt = await api.call<Record<string, never>>("POST", "/sdapi/v1/interrupt");
    expect(interrupt.status).toBe(200);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.images).toEqual([]);
  });

  it("lists models, samplers, schedulers and upscalers, and reads and sets options", async () => {
    const models = await api.call<
      { title: string; model_name: string; hash: string; sha256: string; filename: string }[]
    >("GET", "/sdapi/v1/sd-models");
    expect(models.json[0]).toMatchObject({ model_name: "sd15-tiny" });
    expect(models.json[0]!.title).toMatch(/^sd15-tiny \[[0-9a-f]{10}\]$/);
    const samplers = await api.call<{ name: string; aliases: string[]; options: object }[]>(
      "GET",
      "/sdapi/v1/samplers",
    );
    expect(samplers.json.map((x) => x.name)).toEqual(
      expect.arrayContaining(["Euler a", "Euler", "DPM++ 2M Karras", "DDIM"]),
    );
    const schedulers = await api.call<{ name: string; label: string }[]>("GET", "/sdapi/v1/schedulers");
    expect(schedulers.json.map((x) => x.label)).toContain("Karras");
    // No upscaler model folders in this test's store: A1111's three that need no model.
    expect((await api.call<{ name: string }[]>("GET", "/sdapi/v1/upscalers")).json.map((u) => u.name)).toEqual([
      "None",
      "Lanczos",
      "Nearest",
    ]);

    const options = await api.call<Record<string, unknown>>("GET", "/sdapi/v1/options");
    expect(options.json).toMatchObject({
      sd_model_checkpoint: models.json[0]!.title,
      samples_format: "png",
      CLIP_stop_at_last_layers: 1,
    });
    const set = await api.call<unknown>("POST", "/sdapi/v1/options", {
      sd_model_checkpoint: models.json[0]!.title,
      CLIP_stop_at_last_layers: 2,
      some_ui_setting: true,
    });
    expect(set.status).toBe(200);
    expect((await api.call<Record<string, unknown>>("GET", "/sdapi/v1/options")).json).toMatchObject({
      CLIP_stop_at_last_layers: 2,
      some_ui_setting: true,
    });
    const clipSkipped = await api.txt2img({ prompt: "x", steps: 2, width: 64, height: 64 });
    expect(JSON.parse(clipSkipped.json.info)).toMatchObject({ clip_skip: 2 });
    const unknown = await api.call<{ detail: string }>("POST", "/sdapi/v1/options", {
      sd_model_checkpoint: "other.safetensors",
    });
    expect(unknown.status).toBe(400);
    await api.call<unknown>("POST", "/sdapi/v1/options", { CLIP_stop_at_last_layers: 1 });
  });

  it.skipIf(!hasPython())(
    "a Python client using only the standard library gets images and parses the infotext; its big integer seeds come back exact",
    async () => {
      const script = join(fileURLToPath(new URL(".", import.meta.url)), "a1111_client.py");
      const out = await new Promise<string>((resolve, reject) =>
        execFile("python3", [script, s.base], { timeout: 60_000 }, (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
        ),
      );
      expect(JSON.parse(out)).toEqual({
        big_seed_exact: true,
        big_seed_pnginfo: "18446744073709551615",
        txt2img_size: [64, 64],
        txt2img_seed: 5,
        img2img_size: [64, 64],
        img2img_seed: 6,
        pnginfo_prompt: "a lighthouse at night",
        pnginfo_steps: "4",
        pnginfo_denoising: "0.5",
      });
    },
  );

  it("puts A1111 requests in the same queue and history as our jobs", async () => {
    await api.txt2img({ prompt: "history check", steps: 2, width: 64, height: 64 });
    const list = (await (await fetch(`${s.base}/api/v1/jobs?limit=1`)).json()) as {
      jobs: { params: { prompt: string }; state: string }[];
    };
    expect(list.jobs[0]).toMatchObject({ state: "done", params: { prompt: "history check" } });
  });
});

function hasPython(): boolean {
  try {
    return spawnSync("python3", ["--version"]).status === 0;
  } catch {
    return false;
  }
}
