import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError, JobCreated, SamplerList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

/** A1111 1.9+'s separate `scheduler` field and our API's, on the sd15-tiny model. */
describe.skipIf(!HAVE_REFERENCE)("schedule types over HTTP", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("GET /sdapi/v1/schedulers lists A1111's schedule types with its SchedulerItem fields", async () => {
    const list = await getJson<
      { name: string; label: string; aliases: string[] | null; default_rho: number; need_inner_model: boolean }[]
    >(`${s.base}/sdapi/v1/schedulers`);
    expect(list.map((x) => x.label)).toEqual([
      "Automatic",
      "Uniform",
      "Karras",
      "Exponential",
      "Polyexponential",
      "SGM Uniform",
      "KL Optimal",
      "Align Your Steps",
      "Simple",
      "Normal",
      "DDIM",
      "Beta",
    ]);
    expect(list.find((x) => x.name === "karras")).toEqual({
      name: "karras",
      label: "Karras",
      aliases: null,
      default_rho: 7,
      need_inner_model: false,
    });
    expect(list.find((x) => x.name === "sgm_uniform")).toMatchObject({
      aliases: ["SGMUniform"],
      need_inner_model: true,
    });
  });

  it("txt2img with Euler + scheduler Karras uses the Karras schedule: another image, 'Schedule type: Karras' in its infotext", async () => {
    const body = { prompt: "a red circle", steps: 4, seed: 9, width: 64, height: 64, sampler_name: "Euler" };
    const plain = await postJson<{ images: string[]; info: string }>(`${s.base}/sdapi/v1/txt2img`, body);
    const karras = await postJson<{ images: string[]; info: string }>(`${s.base}/sdapi/v1/txt2img`, {
      ...body,
      scheduler: "Karras",
    });
    expect([plain.status, karras.status]).toEqual([200, 200]);
    expect(karras.body.images[0]).not.toBe(plain.body.images[0]);
    const infotext = (JSON.parse(karras.body.info) as { infotexts: string[] }).infotexts[0]!;
    expect(infotext).toMatch(/Sampler: Euler, Schedule type: Karras, CFG scale/);
    expect((JSON.parse(plain.body.info) as { infotexts: string[] }).infotexts[0]).not.toMatch(/Schedule type/);
    // png-info reads it back as A1111 does.
    const info = await postJson<{ parameters: Record<string, string> }>(`${s.base}/sdapi/v1/png-info`, {
      image: karras.body.images[0],
    });
    expect(info.body.parameters).toMatchObject({ Sampler: "Euler", "Schedule type": "Karras" });
  });

  it("A1111: an unknown scheduler or one for DDIM is a 422 naming the valid ones; an unknown sampler stays A1111's 404", async () => {
    const unknown = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "x",
      steps: 1,
      width: 64,
      height: 64,
      sampler_name: "Euler",
      scheduler: "Karas",
    });
    expect(unknown.status).toBe(422);
    expect(JSON.stringify(unknown.body)).toMatch(
      /unknown schedule type \\"Karas\\": use one of \\"Automatic\\", \\"Uniform\\", \\"Karras\\"/,
    );
    const ddim = await postJson(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "x",
      steps: 1,
      width: 64,
      height: 64,
      sampler_name: "DDIM",
      scheduler: "Karras",
    });
    expect(ddim.status).toBe(422);
    const sampler = await postJson(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "x",
      steps: 1,
      width: 64,
      height: 64,
      sampler_name: "Warp",
    });
    expect(sampler.status).toBe(404);
  });

  it("our API: scheduler on a job is used and echoed; an unknown one is a 422 listing the valid ones", async () => {
    const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      prompt: "a red circle",
      steps: 3,
      seed: 4,
      sampler_name: "euler",
      scheduler: "exponential",
    });
    expect(created.status).toBe(202);
    const done = await waitForJob(s.base, created.body.id, 120_000);
    expect(done.state).toBe("done");
    expect(done.params).toMatchObject({ sampler_name: "euler", scheduler: "Exponential" });
    const bad = await postJson<ApiError>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      sampler_name: "euler",
      scheduler: "Karas",
    });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.body)).toMatch(/unknown schedule type \\"Karas\\": use one of/);
  });

  it("GET /api/v1/samplers lists the schedule types each sampler takes, so a form offers only those", async () => {
    const { samplers } = await getJson<SamplerList>(`${s.base}/api/v1/samplers`);
    const types = (label: string) => samplers.find((x) => x.label === label)?.schedule_types;
    const all = (await getJson<{ label: string }[]>(`${s.base}/sdapi/v1/schedulers`)).map((x) => x.label);
    expect(types("Euler")).toEqual(all);
    expect(types("DPM++ 2M")).toEqual(all);
    // Samplers with their own timestep grid take none but Automatic (the server refuses the others for them).
    expect(types("DDIM")).toEqual(["Automatic"]);
    expect(types("UniPC")).toEqual(["Automatic"]);
    // What is listed is what a job takes: one listed type and one unlisted, for DDIM.
    const job = { prompt: "a red circle", steps: 1, seed: 1, width: 64, height: 64, sampler_name: "DDIM" };
    const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { ...job, scheduler: "Automatic" });
    expect(created.status).toBe(202);
    expect((await waitForJob(s.base, created.body.id, 120_000)).state).toBe("done");
    expect((await postJson<ApiError>(`${s.base}/api/v1/jobs`, { ...job, scheduler: "Karras" })).status).toBe(422);
  });
});
