import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import type { JobStatus, ModelList } from "../../src/server/api-types.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { maxPixelDiff, PROMPT } from "../helpers/pipeline-parity.js";
import { getJson, postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

const SDXL_IMAGE = () => golden("goldens/sdxl-tiny/txt2img.safetensors").get("image_uint8");
const pixels = (png: Buffer) => sharp(png).raw().toBuffer();

interface A1111Reply {
  images: string[];
  parameters: Record<string, unknown>;
  info: string;
}

describe.skipIf(!HAVE_REFERENCE)("an SDXL model with a refiner over HTTP", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  const euler = { prompt: PROMPT, steps: 4, cfg_scale: 5, seed: 31, sampler_name: "Euler", width: 64, height: 64 };
  beforeAll(async () => {
    // The refiner is the model's own weights as a single file: handing over must then leave the image as it was.
    s = await startServer(
      {
        cacheDir: cache.path,
        loadOptions: {
          threads: 1,
          cacheDir: cache.path,
          refiner: { model: ref("models/sdxl-tiny.ldm.safetensors"), config: ref("models/sdxl-tiny") },
        },
      },
      { modelPath: ref("models/sdxl-tiny") },
    );
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  async function job(body: Record<string, unknown>): Promise<{ status: JobStatus; pixels: Buffer }> {
    const created = await postJson<{ id: string }>(`${s.base}/api/v1/jobs`, body);
    expect(created.status).toBe(202);
    const done = await waitForJob(s.base, created.body.id);
    expect(done.state).toBe("done");
    return {
      status: done,
      pixels: await pixels(Buffer.from(await (await fetch(`${s.base}${done.images[0]!.url}`)).arrayBuffer())),
    };
  }

  it("/api/v1/models names the family, the defaults and the refiner; sd-models lists the refiner for refiner_checkpoint", async () => {
    const { models } = await getJson<ModelList>(`${s.base}/api/v1/models`);
    expect(models[0]).toMatchObject({
      name: "sdxl-tiny",
      family: "sdxl",
      default_size: 64,
      default_steps: 20,
      default_sampler: "euler-a",
      refiner: { name: "sdxl-tiny.ldm" },
    });
    const listed = await getJson<{ title: string; model_name: string }[]>(`${s.base}/sdapi/v1/sd-models`);
    expect(listed.map((m) => m.model_name)).toEqual(["sdxl-tiny", "sdxl-tiny.ldm"]);
  });

  it("our API: prompt_2 / negative_prompt_2 reach the second encoder and are kept with the job; refiner_switch_at hands over", async () => {
    const second = await job({ ...euler, prompt_2: "a red cube", negative_prompt_2: "blurry", refiner_switch_at: 1 });
    expect(second.status.params).toMatchObject({
      prompt_2: "a red cube",
      negative_prompt_2: "blurry",
      refiner_switch_at: 1,
    });
    expect(maxPixelDiff(second.pixels, SDXL_IMAGE())).toBeGreaterThan(1);
    expect(second.status.images[0]!.infotext).not.toMatch(/Refiner/);
    const refined = await job({ ...euler, refiner_switch_at: 0.5 });
    expect(maxPixelDiff(refined.pixels, SDXL_IMAGE())).toBeLessThanOrEqual(1);
    expect(refined.status.images[0]!.infotext).toMatch(
      /, Refiner: sdxl-tiny\.ldm \[[0-9a-f]{10}\], Refiner switch at: 0\.5/,
    );
  });

  it("A1111's API: refiner_checkpoint by title with refiner_switch_at, in the infotext and extra_generation_params; without it no refiner; an unknown one is a 404", async () => {
    const [, refiner] = await getJson<{ title: string; hash: string }[]>(`${s.base}/sdapi/v1/sd-models`);
    const refined = await postJson<A1111Reply>(`${s.base}/sdapi/v1/txt2img`, {
      ...euler,
      refiner_checkpoint: refiner!.title,
      refiner_switch_at: 0.5,
    });
    expect(refined.status).toBe(200);
    expect(
      maxPixelDiff(await pixels(Buffer.from(refined.body.images[0]!, "base64")), SDXL_IMAGE()),
    ).toBeLessThanOrEqual(1);
    const info = JSON.parse(refined.body.info) as {
      infotexts: string[];
      extra_generation_params: Record<string, unknown>;
    };
    // A1111 writes the short title: the name without the extension, and the short hash.
    const short = `sdxl-tiny.ldm [${refiner!.hash}]`;
    expect(refiner!.title).toBe(`sdxl-tiny.ldm.safetensors [${refiner!.hash}]`);
    expect(info.extra_generation_params).toEqual({ Refiner: short, "Refiner switch at": 0.5 });
    expect(info.infotexts[0]).toContain(`Refiner: ${short}, Refiner switch at: 0.5`);
    expect(refined.body.parameters).toMatchObject({ refiner_checkpoint: refiner!.title, refiner_switch_at: 0.5 });

    const plain = await postJson<A1111Reply>(`${s.base}/sdapi/v1/txt2img`, { ...euler, prompt_2: PROMPT });
    expect(plain.status).toBe(200);
    expect(JSON.parse(plain.body.info).infotexts[0]).not.toMatch(/Refiner/);
    expect(maxPixelDiff(await pixels(Buffer.from(plain.body.images[0]!, "base64")), SDXL_IMAGE())).toBeLessThanOrEqual(
      1,
    );

    const unknown = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/txt2img`, {
      ...euler,
      refiner_checkpoint: "sd_xl_refiner_1.0.safetensors",
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.detail).toMatch(
      /Could not find checkpoint with name sd_xl_refiner_1\.0\.safetensors: this server's refiner is sdxl-tiny\.ldm\.safetensors \[/,
    );
  });
});

describe.skipIf(!HAVE_REFERENCE)("an LCM model over HTTP", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path }, { modelPath: ref("models/lcm-tiny") });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("A1111's API takes the model's recommended steps and sampler over its own 50 Euler steps: the reference LCM image", async () => {
    const r = await postJson<A1111Reply>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: PROMPT,
      cfg_scale: 8,
      seed: 42,
      width: 64,
      height: 64,
    });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.info)).toMatchObject({ steps: 4, sampler_name: "LCM", cfg_scale: 8 });
    expect(
      maxPixelDiff(
        await pixels(Buffer.from(r.body.images[0]!, "base64")),
        golden("goldens/lcm-tiny/txt2img.safetensors").get("image_uint8"),
      ),
    ).toBeLessThanOrEqual(1);
  });

  it("a server without a refiner refuses refiner_switch_at (our API, 400) and refiner_checkpoint (A1111's, 404)", async () => {
    const ours = await postJson<{ field: string; message: string }>(`${s.base}/api/v1/jobs`, {
      prompt: PROMPT,
      refiner_switch_at: 0.8,
    });
    expect(ours.status).toBe(400);
    expect(ours.body).toMatchObject({ field: "refiner_switch_at" });
    expect(ours.body.message).toMatch(/this server has none.*diffuse serve --refiner PATH/);
    const a1111 = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: PROMPT,
      refiner_checkpoint: "refiner.safetensors",
    });
    expect(a1111.status).toBe(404);
    expect(a1111.body.detail).toMatch(/this server has no refiner \(start it with --refiner PATH\)/);
    const none = await postJson<A1111Reply>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: PROMPT,
      refiner_checkpoint: "None",
      steps: 1,
      width: 64,
      height: 64,
    });
    expect(none.status).toBe(200);
  });
});
