import { afterAll, describe, expect, it } from "vitest";
import type { JobCreated, JobStatus } from "../../src/server/api-types.js";
import { JobStore } from "../../src/server/store.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import {
  getJson,
  killLeftovers,
  postJson,
  spawnServer,
  startServer,
  tempDir,
  waitForJob,
  type ChildServer,
} from "./harness.js";

describe.skipIf(!HAVE_REFERENCE)("after kill -9", () => {
  const cache = tempDir("diffuse-cache-");
  const data = tempDir("diffuse-crash-");
  const children: ChildServer[] = [];
  afterAll(async () => {
    // A failed assertion must not leave a server process behind.
    await killLeftovers(children);
    cache.remove();
    data.remove();
  });

  it("a restart finds the 5 queued jobs still queued, re-queues the running one, and all 6 complete", async () => {
    const first = await spawnServer(data.path, cache.path);
    children.push(first);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      // The first runs long enough to be killed mid-run; the queued ones need only to complete afterwards.
      const steps = i === 0 ? 100 : 2;
      const r = await postJson<JobCreated>(`${first.base}/api/v1/jobs`, { prompt: `job ${i}`, steps, seed: i });
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    const running = await waitForJob(
      first.base,
      ids[0]!,
      30_000,
      (j) => j.state === "running" && (j.progress?.step ?? 0) >= 2,
    );
    for (const id of ids.slice(1))
      expect((await getJson<JobStatus>(`${first.base}/api/v1/jobs/${id}`)).state).toBe("queued");
    first.child.kill("SIGKILL");
    expect(await first.exited).toBeNull();
    expect(running.progress!.step).toBeLessThan(100);

    const second = await spawnServer(data.path, cache.path);
    children.push(second);
    try {
      expect(second.recovery).toEqual({ requeued: [ids[0]], failed: [] });
      const done: JobStatus[] = [];
      for (const id of ids) done.push(await waitForJob(second.base, id, 60_000));
      expect(done.map((j) => j.state)).toEqual(Array(6).fill("done"));
      expect(done.map((j) => j.images.length)).toEqual(Array(6).fill(1));
      // The interrupted job ran first again, with the seed it was given at acceptance.
      for (let k = 1; k < 6; k++) expect(done[k]!.started_at! >= done[k - 1]!.finished_at!).toBe(true);
      expect(done.map((j) => j.params.seed)).toEqual([0, 1, 2, 3, 4, 5]);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  });
});

describe("crash recovery in the store", () => {
  it("re-queues a job interrupted once, and fails it with the reason when interrupted twice", () => {
    const data = tempDir("diffuse-store-");
    try {
      let store = JobStore.open(data.path);
      const params = { type: "txt2img" as const, prompt: "x", seed: 1, has_init_image: false, has_mask: false };
      const base = {
        model: "m",
        type: "txt2img" as const,
        params,
        source: "api" as const,
        uploads: {},
        createdAt: new Date().toISOString(),
      };
      store.insert({ ...base, id: "00000000-0000-4000-8000-000000000001" });
      store.insert({ ...base, id: "00000000-0000-4000-8000-000000000002" });
      store.markRunning("00000000-0000-4000-8000-000000000001", new Date().toISOString());
      store.close(); // what a kill leaves behind: a row still "running"

      store = JobStore.open(data.path);
      expect(store.recover(new Date().toISOString())).toEqual({
        requeued: ["00000000-0000-4000-8000-000000000001"],
        failed: [],
      });
      expect(store.get("00000000-0000-4000-8000-000000000001")).toMatchObject({
        state: "queued",
        interruptions: 1,
        startedAt: null,
      });
      expect(store.nextQueued("m")!.id).toBe("00000000-0000-4000-8000-000000000001");
      store.markRunning("00000000-0000-4000-8000-000000000001", new Date().toISOString());
      store.close();

      store = JobStore.open(data.path);
      expect(store.recover(new Date().toISOString())).toEqual({
        requeued: [],
        failed: ["00000000-0000-4000-8000-000000000001"],
      });
      const failed = store.get("00000000-0000-4000-8000-000000000001")!;
      expect(failed.state).toBe("failed");
      expect(failed.error).toMatch(/stopped abruptly .* twice/);
      expect(store.get("00000000-0000-4000-8000-000000000002")!.state).toBe("queued");
      store.close();
    } finally {
      data.remove();
    }
  });
});

describe.skipIf(!HAVE_REFERENCE)("a graceful shutdown", () => {
  it("puts the running job back in the queue without counting it as a crash, and the next start finishes it", async () => {
    const cache = tempDir("diffuse-cache-");
    const data = tempDir("diffuse-graceful-");
    try {
      const first = await startServer({ cacheDir: cache.path, dataDir: data.path });
      const { body } = await postJson<JobCreated>(`${first.base}/api/v1/jobs`, { prompt: "x", steps: 150 });
      await waitForJob(first.base, body.id, 30_000, (j) => j.state === "running" && (j.progress?.step ?? 0) >= 2);
      await first.close();
      const second = await startServer({ cacheDir: cache.path, dataDir: data.path });
      try {
        expect(second.app.recovery).toEqual({ requeued: [], failed: [] });
        const done = await waitForJob(second.base, body.id);
        expect(done.state).toBe("done");
        expect(second.app.context.store.get(body.id)!.interruptions).toBe(0);
      } finally {
        await second.close();
      }
    } finally {
      cache.remove();
      data.remove();
    }
  });
});
