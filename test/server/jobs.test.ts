import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { getPngText } from "../../src/image/png-text.js";
import type { ApiError, JobCreated, JobList, JobStatus, ModelList, SamplerList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE, MISSING_REFERENCE } from "../helpers/fixtures.js";
import { getJson, pngBase64, postJson, readSse, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

describe.skipIf(!HAVE_REFERENCE)("our job API on the sd15-tiny model", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path, previewIntervalMs: 0 });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("accepts a txt2img job at once and finishes it with a PNG that carries its infotext", async () => {
    const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a red square", steps: 3, seed: 42 });
    expect(created.status).toBe(202);
    expect(created.body.state).toBe("queued");
    const done = await waitForJob(s.base, created.body.id);
    expect(done.state).toBe("done");
    expect(done.progress).toEqual({ step: 3, steps: 3 });
    expect(done.params).toMatchObject({
      prompt: "a red square",
      steps: 3,
      seed: 42,
      width: 64,
      height: 64,
      type: "txt2img",
    });
    expect(done.images).toHaveLength(1);
    const img = await fetch(`${s.base}${done.images[0]!.url}`);
    expect(img.headers.get("content-type")).toBe("image/png");
    const png = new Uint8Array(await img.arrayBuffer());
    const infotext = getPngText(png, "parameters");
    expect(infotext).toBe(done.images[0]!.infotext);
    expect(infotext).toContain("Steps: 3");
    expect(infotext).toContain("Seed: 42");
  });

  it("runs img2img and inpaint jobs from data-URL uploads", async () => {
    const init = `data:image/png;base64,${await pngBase64(64, 64, [200, 30, 30])}`;
    const mask = `data:image/png;base64,${await pngBase64(64, 64, [255, 255, 255])}`;
    const a = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      type: "img2img",
      prompt: "x",
      steps: 4,
      init_image: init,
      denoising_strength: 0.5,
    });
    const b = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      type: "inpaint",
      prompt: "x",
      steps: 4,
      init_image: init,
      mask,
    });
    expect([a.status, b.status]).toEqual([202, 202]);
    const [ja, jb] = [await waitForJob(s.base, a.body.id), await waitForJob(s.base, b.body.id)];
    expect(ja.state).toBe("done");
    expect(ja.params).toMatchObject({ has_init_image: true, has_mask: false, denoising_strength: 0.5 });
    expect(ja.images[0]!.infotext).toContain("Denoising strength: 0.5");
    expect(jb.state).toBe("done");
    expect(jb.params).toMatchObject({ type: "inpaint", has_mask: true });
  });

  it("rejects a bad request with 400 naming the field and the reason", async () => {
    const cases: [unknown, string][] = [
      [{ prompt: "x", steps: 0 }, "steps"],
      [{ prompt: "x", width: 65 }, "width"],
      [{ steps: 3 }, "prompt"],
      [{ prompt: "x", sampler_name: "nope" }, "sampler_name"],
      [{ prompt: "x", type: "img2img" }, "init_image"],
      [{ prompt: "x", type: "img2img", init_image: "bm90IGFuIGltYWdl" }, "init_image"],
      [
        { prompt: "x", type: "inpaint", init_image: await pngBase64(64, 64, [0, 0, 0]), mask: "bm90IGFuIGltYWdl" },
        "mask",
      ],
    ];
    for (const [body, field] of cases) {
      const r = await postJson<ApiError>(`${s.base}/api/v1/jobs`, body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(r.body.field).toBe(field);
      expect(r.body.message.length).toBeGreaterThan(10);
    }
  });

  it("answers 413 for a body over the limit", async () => {
    const small = await startServer({ cacheDir: cache.path, bodyLimit: 1024 }, { listen: false });
    try {
      const r = await small.app.fastify.inject({
        method: "POST",
        url: "/api/v1/jobs",
        payload: { prompt: "x".repeat(4096) },
      });
      expect(r.statusCode).toBe(413);
      expect(r.json<ApiError>().message).toMatch(/larger than/);
    } finally {
      await small.close();
    }
  });

  it("streams queued, running, steps with previews and done over SSE", async () => {
    const { body } = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a", steps: 5 });
    const res = await fetch(`${s.base}${body.events_url}`);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = await readSse(res);
    const names = events.map((e) => e.event);
    expect(names.at(-1)).toBe("done");
    const steps = events.filter((e) => e.event === "step").map((e) => e.data as { step: number; preview?: string });
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4, 5].slice(5 - steps.length));
    expect(steps.some((e) => e.preview?.startsWith("data:image/png;base64,"))).toBe(true);
    expect((events.at(-1)!.data as { images: unknown[] }).images).toHaveLength(1);
  });

  it("tells a queued job's SSE listener its new place when the queue moves", async () => {
    const a = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a", steps: 150 });
    const b = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "b", steps: 2 });
    const c = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "c", steps: 2 });
    await waitForJob(s.base, a.body.id, 30_000, (j) => j.state === "running");
    const res = await fetch(`${s.base}${c.body.events_url}`);
    let cancelledB = false;
    const events = await readSse(res, (e) => {
      if (e.event === "queued" && !cancelledB) {
        cancelledB = true;
        void fetch(`${s.base}/api/v1/jobs/${b.body.id}`, { method: "DELETE" }).then(() =>
          fetch(`${s.base}/api/v1/jobs/${a.body.id}`, { method: "DELETE" }),
        );
      }
      return false;
    });
    const names = events.map((e) => e.event);
    expect(events[0]).toEqual({ event: "queued", data: { position: 1 } });
    expect(events).toContainEqual({ event: "queued", data: { position: 0 } });
    expect(names.indexOf("running")).toBeGreaterThan(0);
    expect(names.at(-1)).toBe("done");
  });

  it("keeps running a job whose SSE client disconnects mid-stream", async () => {
    const { body } = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a", steps: 40 });
    const ac = new AbortController();
    const res = await fetch(`${s.base}${body.events_url}`, { signal: ac.signal });
    const seen = await readSse(res, (e) => e.event === "step" && (e.data as { step: number }).step >= 2);
    ac.abort();
    expect(seen.at(-1)!.event).toBe("step");
    const done = await waitForJob(s.base, body.id);
    expect(done.state).toBe("done");
    expect(done.progress).toEqual({ step: 40, steps: 40 });
  });

  it("cancels a running job within one step of the cancel", async () => {
    const { body } = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a", steps: 150 });
    await waitForJob(s.base, body.id, 30_000, (j) => j.state === "running" && (j.progress?.step ?? 0) >= 5);
    // Where the job was at the instant the server acted on the DELETE.
    const running = s.app.context.queue.running!;
    let stepAtCancel = -1;
    running.abort.signal.addEventListener("abort", () => (stepAtCancel = running.progress!.step));
    const r = await fetch(`${s.base}/api/v1/jobs/${body.id}`, { method: "DELETE" });
    const final = (await r.json()) as JobStatus;
    expect(r.status).toBe(200);
    expect(final.state).toBe("cancelled");
    expect(final.error).toMatch(/cancelled at step/);
    expect(stepAtCancel).toBeGreaterThanOrEqual(5);
    expect(final.progress!.step - stepAtCancel).toBeLessThanOrEqual(1);
    expect(final.images).toEqual([]);
  });

  it("cancels a queued job without running it, and refuses to cancel a finished one", async () => {
    const first = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a", steps: 60 });
    const second = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "b", steps: 3 });
    const r = await fetch(`${s.base}/api/v1/jobs/${second.body.id}`, { method: "DELETE" });
    expect(r.status).toBe(200);
    const cancelled = (await r.json()) as JobStatus;
    expect(cancelled.state).toBe("cancelled");
    expect(cancelled.started_at).toBeNull();
    await waitForJob(s.base, first.body.id);
    const again = await fetch(`${s.base}/api/v1/jobs/${first.body.id}`, { method: "DELETE" });
    expect(again.status).toBe(409);
  });

  it("lists the history newest first, limited", async () => {
    const list = await getJson<JobList>(`${s.base}/api/v1/jobs?limit=3`);
    expect(list.jobs).toHaveLength(3);
    const created = list.jobs.map((j) => j.created_at);
    expect([...created].sort().reverse()).toEqual(created);
    const bad = await fetch(`${s.base}/api/v1/jobs?limit=0`);
    expect(bad.status).toBe(400);
  });

  it("describes the model, the samplers and itself (OpenAPI)", async () => {
    const models = await getJson<ModelList>(`${s.base}/api/v1/models`);
    expect(models.models[0]).toMatchObject({ name: "sd15-tiny", default_size: 64, loaded: true });
    expect(models.models[0]!.hash).toMatch(/^[0-9a-f]{10}$/);
    const samplers = await getJson<SamplerList>(`${s.base}/api/v1/samplers`);
    expect(samplers.samplers.map((x) => x.label)).toContain("Euler a");
    // The page's sampler menu is this list: the k-diffusion-only samplers are on it.
    expect(samplers.samplers.map((x) => x.label)).toEqual(
      expect.arrayContaining(["DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 3M SDE", "Restart"]),
    );
    const doc = await getJson<{
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    }>(`${s.base}/api/docs`);
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/api/v1/jobs", "/api/v1/jobs/{id}", "/api/v1/jobs/{id}/events", "/api/v1/images/{id}"]),
    );
    expect(doc.components.schemas["JobCreateRequest"]).toBeDefined();
  });

  it("serves the built page from web/dist, and a fallback page when it is not built", async () => {
    const fallback = await fetch(`${s.base}/`);
    expect(await fallback.text()).toContain("web page not built: run npm run build:web");
    const web = join(s.dataDir, "web-dist");
    mkdirSync(join(web, "assets"), { recursive: true });
    writeFileSync(join(web, "index.html"), "<!doctype html><title>page</title>");
    writeFileSync(join(web, "assets", "app-1234.js"), "console.log(1)");
    const withPage = await startServer({ cacheDir: cache.path, webRoot: web });
    try {
      expect(await (await fetch(`${withPage.base}/`)).text()).toContain("<title>page</title>");
      const js = await fetch(`${withPage.base}/assets/app-1234.js`);
      expect(js.headers.get("content-type")).toMatch(/javascript/);
      expect(js.headers.get("cache-control")).toMatch(/immutable/);
      expect((await fetch(`${withPage.base}/gallery`)).status).toBe(200);
      expect((await fetch(`${withPage.base}/api/v1/nothing`)).status).toBe(404);
    } finally {
      await withPage.close();
    }
  });
});

if (!HAVE_REFERENCE) console.warn(MISSING_REFERENCE);
