import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { JobCreated, JobStatus } from "../../src/server/api-types.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { maxChannelDiff as maxDiff, rgbPixels as pixels, sketchPng } from "../helpers/sketch.js";
import { getJson, postJson, startServer, tempDir, TINY_MODEL, waitForJob, type TestServer } from "./harness.js";

describe.skipIf(!HAVE_REFERENCE)("ControlNet units on our API's jobs", () => {
  let s: TestServer;
  const models = tempDir("diffuse-cn-jobs-");
  const cache = tempDir("diffuse-cn-cache-");
  let sketch: Buffer;
  beforeAll(async () => {
    mkdirSync(join(models.path, "controlnet-tiny"));
    cpSync(ref("models/controlnet-tiny"), join(models.path, "controlnet-tiny"), { recursive: true });
    sketch = await sketchPng();
    s = await startServer({ controlnetDirs: [models.path], cacheDir: cache.path });
  });
  afterAll(async () => {
    await s.close();
    models.remove();
    cache.remove();
  });

  it("a job with a scribble unit makes the image the pipeline makes with that ControlNet, and records the unit with its defaults", async () => {
    const body = {
      prompt: "a red circle",
      steps: 3,
      seed: 7,
      width: 64,
      height: 64,
      controlnet: [
        {
          image: `data:image/png;base64,${sketch.toString("base64")}`,
          model: "controlnet-tiny",
          module: "scribble",
          weight: 0.8,
          guidance_end: 0.7,
        },
      ],
    };
    const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, body);
    expect(created.status).toBe(202);
    const done = await waitForJob(s.base, created.body.id, 60_000);
    expect(done.error).toBeNull();
    expect(done.state).toBe("done");
    // Recorded by title and canonical module, with every default filled; the image is not echoed.
    expect(done.params.controlnet).toEqual([
      {
        model: expect.stringMatching(/^controlnet-tiny \[[0-9a-f]{8}\]$/),
        module: "scribble",
        weight: 0.8,
        guidance_start: 0,
        guidance_end: 0.7,
        resize_mode: "Crop and Resize",
        threshold_a: expect.any(Number),
      },
    ]);
    expect(done.images[0]!.infotext).toMatch(
      /ControlNet 0: "Module: scribble, Model: controlnet-tiny \[[0-9a-f]{8}\], Weight: 0\.8/,
    );
    const served = await pixels(Buffer.from(await (await fetch(`${s.base}${done.images[0]!.url}`)).arrayBuffer()));

    const pipe = await loadPipeline(TINY_MODEL, { threads: 1, cacheDir: cache.path });
    try {
      const unit = {
        image: sketch,
        model: join(models.path, "controlnet-tiny"),
        module: "scribble",
        weight: 0.8,
        guidance_end: 0.7,
      };
      const base = { prompt: "a red circle", steps: 3, seed: 7, width: 64, height: 64, job_id: done.id };
      const direct = await pixels(await (await pipe.generate({ ...base, controlnet: [unit] })).images[0]!.png());
      const plain = await pixels(await (await pipe.generate(base)).images[0]!.png());
      expect(maxDiff(served, direct)).toBeLessThanOrEqual(1);
      // And the unit did something: without it the image is another.
      expect(maxDiff(served, plain)).toBeGreaterThan(8);
    } finally {
      await pipe.close();
    }
  });

  it("an unknown module or model is a 422 naming the valid ones; nothing is queued", async () => {
    const before = (await getJson<{ jobs: JobStatus[] }>(`${s.base}/api/v1/jobs`)).jobs.length;
    const image = sketch.toString("base64");
    const mod = await postJson<{ error: string; message: string; field: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      controlnet: [{ image, model: "controlnet-tiny", module: "depth_midas" }],
    });
    expect(mod.status).toBe(422);
    expect(mod.body.field).toBe("controlnet.0.module");
    expect(mod.body.message).toMatch(
      /no ControlNet module "depth_midas"; the modules are none, scribble, canny, invert/,
    );
    const model = await postJson<{ error: string; message: string; field: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      controlnet: [{ image, model: "control_v11p_sd15_openpose", module: "none" }],
    });
    expect(model.status).toBe(422);
    expect(model.body.field).toBe("controlnet.0.model");
    expect(model.body.message).toMatch(
      /no ControlNet "control_v11p_sd15_openpose"; the ControlNets this server serves are "controlnet-tiny \[[0-9a-f]{8}\]"/,
    );
    const notImage = await postJson<{ field: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      controlnet: [{ image: Buffer.from("hello").toString("base64"), model: "controlnet-tiny" }],
    });
    expect(notImage.status).toBe(400);
    expect(notImage.body.field).toBe("controlnet.0.image");
    const badEnd = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      controlnet: [{ image, model: "controlnet-tiny", guidance_start: 0.8, guidance_end: 0.2 }],
    });
    expect(badEnd.status).toBe(400);
    expect(badEnd.body.message).toMatch(/guidance start 0.8 is after guidance end 0.2/);
    expect((await getJson<{ jobs: JobStatus[] }>(`${s.base}/api/v1/jobs`)).jobs.length).toBe(before);
  });
});
