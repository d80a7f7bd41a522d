import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { embeddedServerWithoutWatermark, getJson, postJson } from "./harness.js";

type Txt2Img = { images: string[]; info: string };

async function pixels(b64: string): Promise<{ width?: number; height?: number; data: Buffer }> {
  const img = sharp(Buffer.from(b64, "base64"));
  const { width, height } = await img.metadata();
  return { width, height, data: await img.raw().toBuffer() };
}

/** What an A1111 client does with png-info's parameters to make the image again ("send to txt2img"). */
function requestFromPngInfo(p: Record<string, string>): Record<string, unknown> {
  return {
    prompt: p["Prompt"],
    negative_prompt: p["Negative prompt"],
    steps: Number(p["Steps"]),
    sampler_name: p["Sampler"],
    cfg_scale: Number(p["CFG scale"]),
    seed: Number(p["Seed"]),
    width: Number(p["Size-1"]),
    height: Number(p["Size-2"]),
    subseed: Number(p["Variation seed"]),
    subseed_strength: Number(p["Variation seed strength"]),
    enable_hr: true,
    hr_scale: Number(p["Hires upscale"]),
    hr_upscaler: p["Hires upscaler"],
    hr_second_pass_steps: Number(p["Hires steps"]),
    denoising_strength: Number(p["Denoising strength"]),
  };
}

/** The A1111 API's hires fix and variation seeds on the embedded model. */
describe("A1111 txt2img with enable_hr and subseed", () => {
  const started = embeddedServerWithoutWatermark();

  for (const upscaler of ["Latent", "Lanczos"]) {
    it(`hr_upscaler ${upscaler}: 64 -> 128 px, info and png-info as A1111's, and png-info's parameters make the same image`, async () => {
      const body = {
        prompt: "a blue square",
        steps: 3,
        seed: 11,
        width: 64,
        height: 64,
        sampler_name: "Euler a",
        subseed: 12,
        subseed_strength: 0.3,
        enable_hr: true,
        hr_scale: 2,
        hr_upscaler: upscaler,
        hr_second_pass_steps: 2,
        denoising_strength: 0.55,
      };
      const r = await postJson<Txt2Img>(`${started.server.base}/sdapi/v1/txt2img`, body);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const first = await pixels(r.body.images[0]!);
      expect([first.width, first.height]).toEqual([128, 128]);
      const info = JSON.parse(r.body.info) as Record<string, unknown>;
      expect(info).toMatchObject({
        seed: 11,
        subseed: 12,
        all_subseeds: [12],
        subseed_strength: 0.3,
        denoising_strength: 0.55,
        width: 64,
        height: 64,
      });
      expect(info["extra_generation_params"]).toMatchObject({
        "Hires upscale": 2,
        "Hires steps": 2,
        "Hires upscaler": upscaler,
      });
      const pngInfo = await postJson<{ parameters: Record<string, string> }>(
        `${started.server.base}/sdapi/v1/png-info`,
        {
          image: r.body.images[0],
        },
      );
      expect(pngInfo.body.parameters).toMatchObject({
        Seed: "11",
        "Variation seed": "12",
        "Variation seed strength": "0.3",
        "Denoising strength": "0.55",
        "Hires upscale": "2",
        "Hires steps": "2",
        "Hires upscaler": upscaler,
      });
      const request = requestFromPngInfo(pngInfo.body.parameters);
      expect(request).toEqual({ ...body, negative_prompt: "", cfg_scale: 3 });
      const again = await postJson<Txt2Img>(`${started.server.base}/sdapi/v1/txt2img`, request);
      expect(again.status).toBe(200);
      expect((await pixels(again.body.images[0]!)).data.equals(first.data)).toBe(true);
    });
  }

  it("lists the latent upscale modes; an unknown upscaler is refused naming the known ones", async () => {
    expect(await getJson<{ name: string }[]>(`${started.server.base}/sdapi/v1/latent-upscale-modes`)).toEqual([
      { name: "Latent" },
      { name: "Latent (antialiased)" },
      { name: "Latent (bicubic)" },
      { name: "Latent (bicubic antialiased)" },
      { name: "Latent (nearest)" },
      { name: "Latent (nearest-exact)" },
    ]);
    const r = await postJson<{ detail: string }>(`${started.server.base}/sdapi/v1/txt2img`, {
      prompt: "x",
      width: 64,
      height: 64,
      enable_hr: true,
      hr_upscaler: "4x-UltraSharp",
    });
    expect(r.status).toBe(400);
    expect(r.body.detail).toMatch(/unknown hires upscaler "4x-UltraSharp": use one of "Latent", .*"Lanczos"/);
  });
});
