/**
 * The A1111 API's hires fix with a learned upscaler: the names txt2img accepts for hr_upscaler are those
 * /sdapi/v1/upscalers lists (the server's model folders), and the worker thread that generates finds the same files.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, type TestServer, tempDir } from "./harness.js";

type Txt2Img = { images: string[]; info: string };

async function pixels(b64: string): Promise<{ width?: number; height?: number; data: Buffer }> {
  const img = sharp(Buffer.from(b64, "base64"));
  const { width, height } = await img.metadata();
  return { width, height, data: await img.raw().toBuffer() };
}

const BODY = {
  prompt: "a blue square",
  steps: 3,
  seed: 11,
  width: 64,
  height: 64,
  sampler_name: "Euler a",
  enable_hr: true,
  hr_scale: 2,
  hr_second_pass_steps: 2,
  denoising_strength: 0.55,
};

describe("A1111 txt2img with hr_upscaler naming an ESRGAN model file", () => {
  let s: TestServer;
  const folder = tempDir("diffuse-hires-learned-");
  beforeAll(async () => {
    const webui = join(folder.path, "webui");
    mkdirSync(join(webui, "models", "Stable-diffusion"), { recursive: true });
    mkdirSync(join(webui, "models", "ESRGAN"), { recursive: true });
    copyFileSync(join(OWN_FIXTURES, "rrdbnet", "x4-old.pth"), join(webui, "models", "ESRGAN", "tiny-esrgan-4x.pth"));
    writeFileSync(join(webui, "models", "ESRGAN", "broken-4x.pth"), "this is not a torch.save file");
    const cacheDir = join(folder.path, "cache");
    // The robust watermark carries each job's id: off, so that a regenerated image can be compared pixel for pixel.
    s = await startServer(
      {
        cacheDir,
        loadOptions: { threads: 1, cacheDir, watermark: false },
        models: {
          home: join(folder.path, "home"),
          cacheDir: join(folder.path, "hf"),
          modelsDirs: [webui],
          searchDefaults: false,
        },
      },
      { modelPath: defaultModelPath() },
    );
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      folder.remove();
    }
  });

  it("64 -> 128 px with the RRDBNet, unlike Lanczos; png-info's Hires upscaler makes the same image again", async () => {
    const names = (await getJson<{ name: string }[]>(`${s.base}/sdapi/v1/upscalers`)).map((u) => u.name);
    expect(names).toContain("tiny-esrgan-4x");
    const r = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, { ...BODY, hr_upscaler: "tiny-esrgan-4x" });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const first = await pixels(r.body.images[0]!);
    expect([first.width, first.height]).toEqual([128, 128]);
    const info = JSON.parse(r.body.info) as Record<string, unknown>;
    expect(info["extra_generation_params"]).toMatchObject({ "Hires upscaler": "tiny-esrgan-4x" });
    const pngInfo = await postJson<{ parameters: Record<string, string> }>(`${s.base}/sdapi/v1/png-info`, {
      image: r.body.images[0],
    });
    expect(pngInfo.body.parameters["Hires upscaler"]).toBe("tiny-esrgan-4x");
    const again = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, {
      ...BODY,
      hr_upscaler: pngInfo.body.parameters["Hires upscaler"],
    });
    expect(again.status).toBe(200);
    expect((await pixels(again.body.images[0]!)).data.equals(first.data)).toBe(true);
    const lanczos = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, { ...BODY, hr_upscaler: "Lanczos" });
    expect(lanczos.status).toBe(200);
    expect((await pixels(lanczos.body.images[0]!)).data.equals(first.data)).toBe(false);
  });

  it("a corrupt model file fails with its own error; an unknown name is refused listing the model files", async () => {
    const broken = await postJson<{ detail?: string; error?: string }>(`${s.base}/sdapi/v1/txt2img`, {
      ...BODY,
      hr_upscaler: "broken-4x",
    });
    expect(broken.status).not.toBe(200);
    expect(JSON.stringify(broken.body)).toMatch(/broken-4x\.pth/);
    const unknown = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/txt2img`, {
      ...BODY,
      hr_upscaler: "4x-UltraSharp",
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.detail).toMatch(/unknown hires upscaler "4x-UltraSharp": use one of .*"tiny-esrgan-4x"/);
  });
});
