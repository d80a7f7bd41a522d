import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobCreated, JobList, JobStatus } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, postJson, spawnServer, tempDir, waitForJob, type ChildServer } from "./harness.js";

const CLIENTS = 50;
const STATUS_BUDGET_MS = 100;

/**
 * The server runs in its own process, as in production: the 50 clients and the pollers live in the test
 * process, so their own work does not count against the server's answer times.
 */
describe.skipIf(!HAVE_REFERENCE)("50 clients submitting at once", () => {
  let s: ChildServer;
  const cache = tempDir("diffuse-cache-");
  const data = tempDir("diffuse-load-");
  beforeAll(async () => {
    s = await spawnServer(data.path, cache.path);
    // Warm the model (its graphs are built on first use) so a one-time build is not part of the run.
    const warm = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "warm up", steps: 1 });
    await waitForJob(s.base, warm.body.id);
  });
  afterAll(async () => {
    try {
      s?.child.kill("SIGTERM");
      await s?.exited;
    } finally {
      cache.remove();
      data.remove();
    }
  });

  it("completes all 50 in submission order, none lost or duplicated, status answered within 100 ms throughout", async () => {
    const ids: string[] = [];
    const latencies: number[] = [];
    const serverTimes: number[] = [];
    let finished = false;
    // Status polls run the whole time: during the burst of submissions and while the queue drains.
    const poll = async () => {
      let n = 0;
      while (!finished) {
        const id = ids[n++ % Math.max(ids.length, 1)];
        if (id === undefined) {
          await new Promise((r) => setTimeout(r, 2));
          continue;
        }
        const t0 = performance.now();
        const r = await fetch(`${s.base}/api/v1/jobs/${id}`);
        await r.arrayBuffer();
        latencies.push(performance.now() - t0);
        serverTimes.push(Number(/dur=([\d.]+)/.exec(r.headers.get("server-timing") ?? "")?.[1] ?? NaN));
        expect(r.status).toBe(200);
      }
    };
    const pollers = [poll(), poll()];
    const t0 = performance.now();
    const submissions = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const r = await fetch(`${s.base}/api/v1/jobs`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: `client ${i}`, steps: 3, seed: i }),
        });
        expect(r.status).toBe(202);
        const created = (await r.json()) as JobCreated;
        ids.push(created.id);
        return created;
      }),
    );
    const submitMs = performance.now() - t0;

    const deadline = Date.now() + 60_000;
    let jobs: JobStatus[] = [];
    for (;;) {
      // Submission order is acceptance order: the history lists newest first.
      jobs = (await getJson<JobList>(`${s.base}/api/v1/jobs?limit=${CLIENTS}`)).jobs.reverse();
      if (jobs.every((j) => j.state === "done" || j.state === "failed")) break;
      if (Date.now() > deadline) throw new Error(`not finished: ${jobs.filter((j) => j.state !== "done").length} left`);
      await new Promise((r) => setTimeout(r, 50));
    }
    finished = true;
    await Promise.all(pollers);
    const totalMs = performance.now() - t0;

    // None lost, none duplicated.
    expect(new Set(submissions.map((c) => c.id)).size).toBe(CLIENTS);
    expect(new Set(jobs.map((j) => j.id))).toEqual(new Set(submissions.map((c) => c.id)));
    expect(jobs.every((j) => j.state === "done")).toBe(true);
    expect(jobs.every((j) => j.images.length === 1)).toBe(true);
    expect(new Set(jobs.flatMap((j) => j.images.map((i) => i.id))).size).toBe(CLIENTS);
    // Each job carries its own client's request.
    for (const j of jobs) expect(j.images[0]!.infotext).toContain(`Seed: ${j.params.seed}`);
    // In submission order, one at a time: each starts after the previous one finished.
    for (let k = 1; k < jobs.length; k++) {
      expect(jobs[k]!.started_at! >= jobs[k - 1]!.finished_at!, `job ${k} started before job ${k - 1} finished`).toBe(true);
    }

    latencies.sort((a, b) => a - b);
    serverTimes.sort((a, b) => a - b);
    const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
    console.log(
      `50 jobs: submitted in ${submitMs.toFixed(0)} ms, all done in ${totalMs.toFixed(0)} ms; ${latencies.length} status polls: ` +
        `round trip p50 ${pct(latencies, 0.5).toFixed(1)} ms, p99 ${pct(latencies, 0.99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms; ` +
        `in the server max ${serverTimes.at(-1)!.toFixed(1)} ms`,
    );
    expect(latencies.length).toBeGreaterThan(100);
    // Time spent in the server on every single status request (Server-Timing), and the round trip as a client
    // sees it for 99% of them: the worst round trips on a shared 2-core machine measure other processes
    // taking the CPU (the server process is simply not scheduled), not this server.
    expect(serverTimes.at(-1)!).toBeLessThan(STATUS_BUDGET_MS);
    expect(pct(latencies, 0.99)).toBeLessThan(STATUS_BUDGET_MS);
  });
});
