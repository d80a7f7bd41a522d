/**
 * One behavioural suite for both queue backends, with every part in its own process as deployed: `diffuse serve`
 * alone (embedded), or `diffuse serve --queue redis://...` with two `diffuse worker` processes and a redis-server
 * of the test's own (BullMQ). Jobs complete exactly once (one history entry, one image each, no stray file) under
 * load and through faults: a worker killed mid-job, Redis killed and restarted, the API server killed and
 * restarted, a worker whose model cannot load; A1111's API works the same on both. The tiny model at 64 px, mostly
 * one step: the queue is under test, not the model.
 */
import { readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobCreated, JobList, JobStatus } from "../../src/server/api-types.js";
import { GENERATE, generationQueueName, KEY_PREFIX, toQueuedGeneration } from "../../src/worker/queue-protocol.js";
import { connectionOptions, parseQueueUrl } from "../../src/worker/queue-url.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis-server.js";
import { jobsDoneBy, jobsStartedBy, kill9, spawnDiffuse, terminate, until, type DiffuseProcess } from "./fleet.js";
import { getJson, pngBase64, postJson, readSse, tempDir, TINY_MODEL } from "./harness.js";

const SERVING = /diffuse serving (\S+)/;
const WORKER_READY = /diffuse worker (\S+) ready/;

interface Deployment {
  api: DiffuseProcess;
  base: string;
  dataDir: string;
  workers: DiffuseProcess[];
  redis?: TestRedis;
  /** Starts the API server (again) on its port and data folder. */
  startApi(): Promise<void>;
  /** Starts a worker (again) under a name. */
  startWorker(name: string): Promise<DiffuseProcess>;
  stop(): Promise<void>;
}

async function deploy(backend: "embedded" | "redis"): Promise<Deployment> {
  const cache = tempDir("diffuse-cache-");
  const data = tempDir("diffuse-fleet-");
  const port = await freePort();
  const env = { DIFFUSE_CACHE: cache.path };
  const redis = backend === "redis" ? await startRedis() : undefined;
  const generation = ["--threads", "1", "--no-provenance"];
  const serveArgs = redis
    ? ["serve", "--queue", redis.url, "--model", TINY_MODEL, "--port", String(port), "--data", data.path]
    : ["serve", "--model", TINY_MODEL, "--port", String(port), "--data", data.path, ...generation];
  const d: Deployment = {
    api: undefined as unknown as DiffuseProcess,
    base: `http://127.0.0.1:${port}`,
    dataDir: data.path,
    workers: [],
    redis,
    startApi: async () => {
      d.api = await spawnDiffuse(serveArgs, SERVING, env);
    },
    startWorker: async (name) => {
      // A short lock: a killed worker's job goes back to the queue within seconds instead of bullmq's 30.
      const args = [
        "worker",
        "--queue",
        redis!.url,
        "--model",
        TINY_MODEL,
        "--name",
        name,
        "--lock-duration",
        "3000",
        "--stalled-interval",
        "500",
        ...generation,
      ];
      const w = await spawnDiffuse(args, WORKER_READY, env);
      d.workers = [...d.workers.filter((x) => x.child.exitCode === null && x.child.signalCode === null), w];
      return w;
    },
    stop: async () => {
      for (const p of [d.api, ...d.workers]) if (p) await kill9(p);
      await redis?.stop();
      cache.remove();
      data.remove();
    },
  };
  try {
    await d.startApi();
    if (redis) {
      await d.startWorker("w1");
      await d.startWorker("w2");
    }
  } catch (e) {
    // The test's afterAll has no deployment to stop: what started is stopped here.
    await d.stop();
    throw e;
  }
  return d;
}

async function submit(base: string, body: Record<string, unknown>): Promise<string> {
  const r = await postJson<JobCreated>(`${base}/api/v1/jobs`, body);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.id;
}

/** `clients` clients submitting `perClient` jobs each, all at once; the ids in no particular order. */
async function burst(
  base: string,
  clients: number,
  perClient: number,
  body: (c: number, k: number) => Record<string, unknown>,
): Promise<string[]> {
  const per = await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const ids: string[] = [];
      for (let k = 0; k < perClient; k++) ids.push(await submit(base, body(c, k)));
      return ids;
    }),
  );
  return per.flat();
}

const FINAL = new Set(["done", "failed", "cancelled"]);

async function history(base: string): Promise<JobStatus[]> {
  return (await getJson<JobList>(`${base}/api/v1/jobs?limit=500`)).jobs;
}

/** Waits (through restarts: a refused connection is retried) until every job is finished. */
async function allFinished(d: Deployment, ids: readonly string[], ms = 90_000): Promise<JobStatus[]> {
  let jobs: JobStatus[] = [];
  await until(
    async () => {
      try {
        const byId = new Map((await history(d.base)).map((j) => [j.id, j]));
        jobs = ids.map((id) => byId.get(id)!);
        return jobs.every((j) => j !== undefined && FINAL.has(j.state));
      } catch (e) {
        // The server is being restarted: fetch cannot connect.
        if (e instanceof TypeError) return false;
        throw e;
      }
    },
    `${ids.length} jobs to finish`,
    ms,
  );
  return jobs;
}

/**
 * Each job done with its one image, each in the history once, no image shared, and the image folder holding
 * exactly the images the history lists: nothing stored twice, nothing left behind. After `kills` SIGKILLs of the
 * server, as many stray files may remain: one killed between writing an image and committing its record leaves
 * that file unrecorded (the job's image is recorded once, from its next delivery).
 */
async function expectExactlyOnce(
  d: Deployment,
  ids: readonly string[],
  jobs: readonly JobStatus[],
  kills = 0,
): Promise<void> {
  expect(new Set(ids).size).toBe(ids.length);
  expect(jobs.map((j) => [j.id, j.state, j.error])).toEqual(ids.map((id) => [id, "done", null]));
  expect(jobs.every((j) => j.images.length === 1)).toBe(true);
  for (const j of jobs) expect(j.images[0]!.infotext).toContain(`Seed: ${j.params.seed}`);
  const all = await history(d.base);
  for (const id of ids)
    expect(
      all.filter((j) => j.id === id),
      id,
    ).toHaveLength(1);
  const listed = all.flatMap((j) => j.images.map((i) => `${i.id}.png`));
  expect(new Set(listed).size).toBe(listed.length);
  const files = readdirSync(join(d.dataDir, "images"));
  for (const f of listed) expect(files).toContain(f);
  expect(files.length - listed.length).toBeLessThanOrEqual(kills);
  if (kills === 0) expect(files.sort()).toEqual([...listed].sort());
}

for (const backend of ["embedded", "redis"] as const) {
  describe.skipIf(!HAVE_REFERENCE)(`${backend} queue`, () => {
    let d: Deployment;
    /** SIGKILLs of the server so far (see expectExactlyOnce). */
    let strays = 0;
    beforeAll(async () => {
      d = await deploy(backend);
      // The first job builds the graphs (once, into the shared cache) before anything is measured against it.
      const warm = await submit(d.base, { prompt: "warm up", steps: 1, width: 64, height: 64 });
      await allFinished(d, [warm]);
      if (backend === "redis")
        await allFinished(d, [await submit(d.base, { prompt: "warm up 2", steps: 1, width: 64, height: 64 })]);
    });
    afterAll(async () => {
      await d?.stop();
    });

    it(`40 jobs from 10 clients complete exactly once${backend === "redis" ? ", on both workers" : ""}`, async () => {
      const before = d.workers.map((w) => jobsDoneBy(w).length);
      const ids = await burst(d.base, 10, 4, (c, k) => ({
        prompt: `client ${c} job ${k}`,
        steps: 1,
        width: 64,
        height: 64,
        seed: c * 10 + k,
      }));
      await expectExactlyOnce(d, ids, await allFinished(d, ids));
      if (backend === "redis") {
        const ran = d.workers.map((w, i) => jobsDoneBy(w).slice(before[i]));
        // Each job ran once, on one worker, and both workers took a share.
        expect(ran.flat().sort()).toEqual([...ids].sort());
        for (const r of ran) expect(r.length).toBeGreaterThan(0);
      }
    });

    it("A1111's API: txt2img and img2img answer with images, progress follows the running job, interrupt stops it", async () => {
      const t2i = await postJson<{ images: string[]; info: string }>(`${d.base}/sdapi/v1/txt2img`, {
        prompt: "a red square",
        steps: 2,
        width: 64,
        height: 64,
        seed: 7,
      });
      expect(t2i.status).toBe(200);
      expect(t2i.body.images).toHaveLength(1);
      expect(JSON.parse(t2i.body.info)).toMatchObject({ seed: 7, steps: 2, width: 64, height: 64 });
      const i2i = await postJson<{ images: string[] }>(`${d.base}/sdapi/v1/img2img`, {
        prompt: "a blue square",
        steps: 4,
        denoising_strength: 0.5,
        init_images: [await pngBase64(64, 64, [200, 40, 40])],
        seed: 8,
      });
      expect(i2i.status).toBe(200);
      expect(i2i.body.images).toHaveLength(1);

      const slow = postJson<{ images: string[] }>(`${d.base}/sdapi/v1/txt2img`, {
        prompt: "slow",
        steps: 150,
        width: 64,
        height: 64,
        seed: 9,
      });
      type Progress = {
        progress: number;
        current_image: string | null;
        state: { job: string; sampling_step: number; sampling_steps: number };
      };
      let seen: Progress | undefined;
      await until(async () => {
        seen = await getJson<Progress>(`${d.base}/sdapi/v1/progress?skip_current_image=false`);
        return seen.state.sampling_step >= 3 && seen.current_image !== null;
      }, "the progress to pass step 3 with a preview");
      // The preview is a PNG of the image's size.
      const preview = Buffer.from(seen!.current_image!, "base64");
      expect(preview.subarray(1, 4).toString()).toBe("PNG");
      expect([preview.readUInt32BE(16), preview.readUInt32BE(20)]).toEqual([64, 64]);
      expect(seen!.state.sampling_steps).toBe(150);
      expect(seen!.state.job).toMatch(/^task\(/);
      expect((await fetch(`${d.base}/sdapi/v1/interrupt`, { method: "POST" })).status).toBe(200);
      const r = await slow;
      expect(r.status).toBe(200);
      expect(r.body.images).toEqual([]);
      const job = (await history(d.base)).find((j) => j.params.prompt === "slow")!;
      expect(job.state).toBe("cancelled");
      expect(job.error).toMatch(/^cancelled at step \d+ of 150$/);
      expect(job.progress!.step).toBeLessThan(150);
    });

    it("our API: a running job's event stream carries its steps and previews, and DELETE stops it within a step", async () => {
      const id = await submit(d.base, { prompt: "watched", steps: 150, width: 64, height: 64, seed: 11 });
      const stream = await fetch(`${d.base}/api/v1/jobs/${id}/events`);
      const events = await readSse(
        stream,
        (e) => e.event === "step" && typeof (e.data as { preview?: string }).preview === "string",
      );
      const withPreview = events.at(-1)!.data as { step: number; steps: number; preview: string };
      expect(withPreview.steps).toBe(150);
      expect(withPreview.preview).toMatch(/^data:image\/png;base64,/);
      const r = await fetch(`${d.base}/api/v1/jobs/${id}`, { method: "DELETE" });
      const final = (await r.json()) as JobStatus;
      expect(r.status).toBe(200);
      expect(final.state).toBe("cancelled");
      expect(final.error).toMatch(/^cancelled at step \d+ of 150$/);
      expect(final.images).toEqual([]);
    });

    it("the API server killed (SIGKILL) mid-run and started again: nothing accepted is lost, nothing completes twice", async () => {
      const ids = await burst(d.base, 4, 5, (c, k) => ({
        prompt: `restart ${c} ${k}`,
        steps: k === 0 ? 30 : 1,
        width: 64,
        height: 64,
        seed: 500 + c * 10 + k,
      }));
      await until(
        async () => (await history(d.base)).some((j) => ids.includes(j.id) && j.state === "running"),
        "a job to run",
      );
      await kill9(d.api);
      // With a queue the workers go on meanwhile: what they finish waits in Redis for the server to come back.
      await new Promise((r) => setTimeout(r, 500));
      await d.startApi();
      strays += 1;
      await expectExactlyOnce(d, ids, await allFinished(d, ids), strays);
    });

    if (backend !== "redis") return;

    it("a worker SIGKILLed mid-job: the job is retried once on the other worker, and all 40 complete exactly once", async () => {
      const ids = await burst(d.base, 10, 4, (c, k) => ({
        prompt: `kill ${c} ${k}`,
        steps: k === 0 ? 60 : 1,
        width: 64,
        height: 64,
        seed: 1000 + c * 10 + k,
      }));
      // A long job some way in, and the worker running it.
      let victim: DiffuseProcess | undefined;
      let jobId: string | undefined;
      await until(async () => {
        const running = (await history(d.base)).find(
          (j) => ids.includes(j.id) && j.state === "running" && (j.progress?.step ?? 0) >= 2,
        );
        victim =
          running &&
          d.workers.find((w) => jobsStartedBy(w).includes(running.id) && !jobsDoneBy(w).includes(running.id));
        jobId = running?.id;
        return victim !== undefined;
      }, "a worker in the middle of a long job");
      const survivor = d.workers.find((w) => w !== victim)!;
      await kill9(victim!);
      const jobs = await allFinished(d, ids);
      await expectExactlyOnce(d, ids, jobs, strays);
      // The killed worker never finished it; the other one did, on its second attempt.
      expect(jobsDoneBy(victim!)).not.toContain(jobId);
      expect(survivor.stderr()).toMatch(new RegExp(`job ${jobId}: started \\(attempt 2\\)`));
      expect(jobsDoneBy(survivor)).toContain(jobId);
      await d.startWorker(victim === d.workers[0] ? "w1b" : "w2b");
    });

    it("Redis killed (SIGKILL) and restarted: the queued jobs survive in its append-only file and all complete exactly once", async () => {
      // No worker: the jobs stay queued in Redis.
      for (const w of d.workers) expect(await terminate(w)).toBe(0);
      const ids = await burst(d.base, 2, 5, (c, k) => ({
        prompt: `aof ${c} ${k}`,
        steps: 1,
        width: 64,
        height: 64,
        seed: 2000 + c * 10 + k,
      }));
      const target = parseQueueUrl(d.redis!.url);
      const name = generationQueueName("sd15-tiny");
      const waiting = async () => {
        const q = new Queue(name, { connection: connectionOptions(target), prefix: KEY_PREFIX });
        try {
          return await q.getWaitingCount();
        } finally {
          await q.close();
        }
      };
      await until(async () => (await waiting()) === ids.length, "the jobs to be queued in Redis");
      // The API server too: nothing could add the jobs again but Redis's own file.
      await kill9(d.api);
      await d.redis!.kill();
      await d.redis!.restart();
      expect(await waiting()).toBe(ids.length);
      await d.startApi();
      await d.startWorker("w3");
      await expectExactlyOnce(d, ids, await allFinished(d, ids), strays);
    });

    it("Redis killed while jobs run and restarted: the server and workers reconnect and every job completes exactly once", async () => {
      const ids = await burst(d.base, 4, 5, (c, k) => ({
        prompt: `redis down ${c} ${k}`,
        steps: k === 0 ? 20 : 1,
        width: 64,
        height: 64,
        seed: 3000 + c * 10 + k,
      }));
      await until(
        async () => (await history(d.base)).some((j) => ids.includes(j.id) && j.state === "done"),
        "a job to finish",
      );
      await d.redis!.kill();
      // Some were still to run when Redis went (the server answers from its own store meanwhile).
      expect((await history(d.base)).filter((j) => ids.includes(j.id) && !FINAL.has(j.state)).length).toBeGreaterThan(
        0,
      );
      await new Promise((r) => setTimeout(r, 500));
      await d.redis!.restart();
      await expectExactlyOnce(d, ids, await allFinished(d, ids), strays);
    });

    it("a job delivered twice is stored once: the first result stays, the second is dropped with its files", async () => {
      const [id] = await burst(d.base, 1, 1, () => ({ prompt: "twice", steps: 1, width: 64, height: 64, seed: 4000 }));
      const [first] = await allFinished(d, [id!]);
      // The same job handed to the workers again (as a producer retrying an add it thought lost would): it runs
      // and is delivered a second time.
      const q = new Queue(generationQueueName("sd15-tiny"), {
        connection: connectionOptions(parseQueueUrl(d.redis!.url)),
        prefix: KEY_PREFIX,
      });
      try {
        await q.add(
          GENERATE,
          toQueuedGeneration({ prompt: "twice", steps: 1, width: 64, height: 64, seed: 4000 }, undefined),
          { jobId: id, attempts: 2 },
        );
      } finally {
        await q.close();
      }
      await until(() => d.workers.flatMap(jobsDoneBy).filter((x) => x === id).length === 2, "the second delivery");
      await until(() => /was delivered again/.test(d.api.stderr()), "the server to receive it");
      const [after] = await allFinished(d, [id!]);
      expect(after).toEqual(first);
      await expectExactlyOnce(d, [id!], [after!], strays);
    });

    it("with Redis away, SIGTERM still stops the API server and the workers", async () => {
      await d.redis!.kill();
      const stopping = [d.api, ...d.workers].map((p) => terminate(p));
      expect(await Promise.all(stopping)).toEqual(stopping.map(() => 0));
      // For the next test, which brings its own server and worker.
      await d.redis!.restart();
    });

    it("a worker whose model fails to load fails the job with the reason instead of leaving it queued", async () => {
      // A model named like no other, so only this worker serves its queue: a checkpoint that is not one.
      const dir = tempDir("diffuse-broken-");
      const port = await freePort();
      const broken = join(dir.path, "broken-model.safetensors");
      mkdirSync(join(dir.path, "data"));
      writeFileSync(broken, Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
      const api = await spawnDiffuse(
        ["serve", "--queue", d.redis!.url, "--model", broken, "--port", String(port), "--data", join(dir.path, "data")],
        SERVING,
      );
      const worker = await spawnDiffuse(
        ["worker", "--queue", d.redis!.url, "--model", broken, "--name", "broken", "--threads", "1"],
        WORKER_READY,
      );
      try {
        expect(worker.stderr()).toMatch(/the model could not be loaded \(.+\)/);
        const base = `http://127.0.0.1:${port}`;
        const id = await submit(base, { prompt: "never", steps: 1, width: 64, height: 64 });
        const [job] = await allFinished({ ...d, base }, [id]);
        expect(job!.state).toBe("failed");
        expect(job!.error).toMatch(/^worker broken could not load the model .*broken-model\.safetensors: .+/);
        expect(job!.images).toEqual([]);
        // The listings say why there is no model to describe.
        const models = await fetch(`${base}/api/v1/models`);
        expect(models.status).toBe(503);
        expect(await models.text()).toMatch(/worker broken could not load it/);
        // The workers load the models: this server knows the one it sends jobs to, and a switch says so.
        const put = await fetch(`${base}/api/v1/models/served`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: "sd15-tiny" }),
        });
        expect(put.status).toBe(400);
        expect(((await put.json()) as { message: string }).message).toMatch(
          /use "broken-model": with --queue the workers load the models/,
        );
      } finally {
        await kill9(worker);
        await kill9(api);
        dir.remove();
      }
    });
  });
}
