/**
 * The per-request work budget: a request's compute in megapixel-steps (width x height / 1e6 x the steps the
 * sampler runs x model calls per step x images), refused with 422 on both APIs when over the server's limit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Command } from "commander";
import { registerServe } from "../../src/cli/serve.js";
import { DEFAULTS, resolveServerConfig } from "../../src/server/config.js";
import { pngBase64, postJson, startServer, tempDir, type TestServer } from "./harness.js";

interface Jobs {
  jobs: { id: string; state: string }[];
}

describe("a server with a small work budget (the tiny model, 64 px native)", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path, workBudget: 0.1 });
  });
  afterAll(async () => {
    await s?.close();
    cache.remove();
  });

  const jobCount = async () => ((await (await fetch(`${s.base}/api/v1/jobs?limit=500`)).json()) as Jobs).jobs.length;

  it("refuses an over-budget request with 422 on our API, saying the figure, the limit and how to raise it, and queues nothing", async () => {
    const before = await jobCount();
    // 512 x 512 x 20 steps x 2 images = 10.49 megapixel-steps.
    const r = await postJson<{ error: string; message: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      width: 512,
      height: 512,
      steps: 20,
      batch_size: 2,
    });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("over_work_budget");
    expect(r.body.message).toContain("10.5 megapixel-steps");
    expect(r.body.message).toContain("512x512 x 20 steps x 2 images");
    expect(r.body.message).toContain("limit of 0.1");
    expect(r.body.message).toContain("--work-budget 11");
    expect(await jobCount()).toBe(before);
  });

  it("refuses it with 422 on A1111's txt2img and img2img too, before anything runs", async () => {
    const before = await jobCount();
    const init = await pngBase64(64, 64, [200, 30, 30]);
    for (const [route, extra] of [
      ["txt2img", {}],
      ["img2img", { init_images: [init], denoising_strength: 1 }],
    ] as const) {
      const r = await postJson<{ error: string; detail: string }>(`${s.base}/sdapi/v1/${route}`, {
        prompt: "x",
        width: 512,
        height: 512,
        steps: 20,
        n_iter: 2,
        ...extra,
      });
      expect(r.status, route).toBe(422);
      expect(r.body.detail).toContain("10.5 megapixel-steps");
      expect(r.body.detail).toContain("--work-budget");
    }
    expect(await jobCount()).toBe(before);
  });

  it("counts the steps img2img actually runs (steps x denoising strength) and two-call samplers twice", async () => {
    const init = await pngBase64(64, 64, [30, 30, 200]);
    const img2img = (denoising_strength: number) => ({
      type: "img2img",
      prompt: "x",
      steps: 40,
      init_image: init,
      denoising_strength,
    });
    // 64 x 64 = 0.004096 MP: 40 steps x 0.5 = 20 steps -> 0.082; at strength 1, 40 steps -> 0.164.
    expect((await postJson(`${s.base}/api/v1/jobs`, img2img(0.5))).status).toBe(202);
    expect((await postJson(`${s.base}/api/v1/jobs`, img2img(1))).status).toBe(422);
    // 20 steps: Euler 0.082, Heun (two model calls per step) 0.164.
    expect((await postJson(`${s.base}/api/v1/jobs`, { prompt: "x", steps: 20, sampler_name: "euler" })).status).toBe(
      202,
    );
    const heun = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      steps: 20,
      sampler_name: "heun",
    });
    expect(heun.status).toBe(422);
    expect(heun.body.message).toContain("x 2 model calls per step (Heun)");
  });

  it("counts the hires fix's second pass at its size", async () => {
    const body = { prompt: "x", steps: 10, width: 64, height: 64, sampler_name: "euler" };
    // 64 x 64 x 10 steps = 0.041 fits; the second pass at 128 x 128 x 10 steps adds 0.164.
    expect((await postJson(`${s.base}/api/v1/jobs`, body)).status).toBe(202);
    const hires = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, { ...body, enable_hr: true });
    expect(hires.status).toBe(422);
    expect(hires.body.message).toContain("then the hires pass: 128x128 x 10 steps");
  });

  it("fills in what the request leaves out as the job would: the model's native size and 20 steps", async () => {
    // 64 x 64 x 20 = 0.082 fits; 30 steps (0.123) does not.
    expect((await postJson(`${s.base}/api/v1/jobs`, { prompt: "x" })).status).toBe(202);
    const r = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, { prompt: "x", steps: 30 });
    expect(r.status).toBe(422);
    expect(r.body.message).toContain("64x64 x 30 steps x 1 image");
  });
});

describe("the default work budget", () => {
  let s: TestServer;
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    // Requests that name their size are checked without the model, so none is needed here.
    s = await startServer({}, { modelPath: notAModel.path });
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  it("admits what people normally ask for", async () => {
    expect(s.app.context.config.workBudget).toBe(DEFAULTS.workBudget);
    const usual = [
      { width: 512, height: 512, steps: 50 },
      { width: 1024, height: 1024, steps: 30, batch_size: 4 },
      { width: 1024, height: 1024, steps: 50, batch_size: 4, sampler_name: "heun" },
      { width: 1024, height: 1024, steps: 50, batch_size: 8 },
      { width: 768, height: 768, steps: 50, batch_size: 4, n_iter: 4 },
      { width: 512, height: 512, steps: 50, batch_size: 8, n_iter: 16 },
      { width: 2048, height: 2048, steps: 150 },
    ];
    for (const p of usual)
      expect((await postJson(`${s.base}/api/v1/jobs`, { prompt: "x", ...p })).status, JSON.stringify(p)).toBe(202);
  });

  it("refuses the largest request the per-field limits allow (2048 px x 150 steps x 8 x 16 images)", async () => {
    const r = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      width: 2048,
      height: 2048,
      steps: 150,
      batch_size: 8,
      n_iter: 16,
    });
    expect(r.status).toBe(422);
    expect(r.body.message).toContain("80,531 megapixel-steps");
    expect(r.body.message).toContain("limit of 2,000");
  });

  it("is configurable, and refuses a budget that is not a positive number", () => {
    const base = { modelPath: notAModel.path };
    expect(resolveServerConfig({ ...base, workBudget: 50_000 }).workBudget).toBe(50_000);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => resolveServerConfig({ ...base, workBudget: bad }), String(bad)).toThrow(/megapixel-steps/);
  });

  it("diffuse serve --work-budget refuses a value that is not a positive number before listening", async () => {
    for (const bad of ["abc", "0", "-5", ""]) {
      const program = new Command("diffuse").exitOverride();
      registerServe(program);
      await expect(
        program.parseAsync([
          "node",
          "diffuse",
          "serve",
          "--port",
          "0",
          "--model",
          notAModel.path,
          "--work-budget",
          bad,
        ]),
        bad,
      ).rejects.toThrow(/--work-budget .* is not a positive number/);
    }
  });
});
