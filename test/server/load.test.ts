import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobCreated, JobList, JobStatus } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, postJson, spawnServer, tempDir, waitForJob, type ChildServer } from "./harness.js";

const CLIENTS = 50;
const STEPS = 3;
const ORDER = ["queued", "running", "done"];

/**
 * The server runs in its own process, as in production, with 50 clients submitting at once while status polls run
 * the whole time. What is asserted is behaviour: every request answered, each job's state and progress only
 * moving forward, none lost or run twice, in order. How fast the answers come is measured by `npm run bench:server`
 * (a full-size model, where it matters), not here: a timed test on a shared machine measures the machine.
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

  it("completes all 50 in submission order, none lost or duplicated, every status poll answered with state and progress only moving forward", async () => {
    const ids: string[] = [];
    /** What each poll said, per poller and job, in the order that poller sent them (one request at a time). */
    const seen = new Map<string, { state: string; step: number }[]>();
    let polls = 0;
    let finished = false;
    // Status polls run the whole time: during the burst of submissions and while the queue drains.
    const poll = async (poller: number) => {
      let n = 0;
      while (!finished) {
        const id = ids[n++ % Math.max(ids.length, 1)];
        if (id === undefined) {
          await new Promise((r) => setTimeout(r, 2));
          continue;
        }
        const r = await fetch(`${s.base}/api/v1/jobs/${id}`);
        expect(r.status).toBe(200);
        const status = (await r.json()) as JobStatus;
        polls++;
        const key = `poller ${poller}, job ${id}`;
        const list = seen.get(key) ?? [];
        list.push({ state: status.state, step: status.progress?.step ?? 0 });
        seen.set(key, list);
      }
    };
    const pollers = [poll(0), poll(1)];
    const submissions = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const r = await fetch(`${s.base}/api/v1/jobs`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: `client ${i}`, steps: STEPS, seed: i }),
        });
        expect(r.status).toBe(202);
        const created = (await r.json()) as JobCreated;
        ids.push(created.id);
        return created;
      }),
    );

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
      expect(jobs[k]!.started_at! >= jobs[k - 1]!.finished_at!, `job ${k} started before job ${k - 1} finished`).toBe(
        true,
      );
    }

    // Every job ran its steps and says so.
    for (const j of jobs) expect(j.progress).toEqual({ step: STEPS, steps: STEPS });
    // The polls ran throughout and every one was answered; what they saw of a job only moved forward: its state
    // through queued, running, done, and its step never back while it ran.
    expect(polls).toBeGreaterThan(CLIENTS);
    for (const [key, list] of seen) {
      for (let k = 1; k < list.length; k++) {
        const [a, b] = [list[k - 1]!, list[k]!];
        expect(ORDER.indexOf(b.state), `${key}: ${a.state} then ${b.state}`).toBeGreaterThanOrEqual(
          ORDER.indexOf(a.state),
        );
        if (a.state === "running" && b.state === "running")
          expect(b.step, `${key}: step ${a.step} then ${b.step}`).toBeGreaterThanOrEqual(a.step);
      }
    }
  });
});
