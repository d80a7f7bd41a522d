/**
 * 100 jobs from 20 clients, each client submitting its 5 one after another while the others do the same: every
 * job runs exactly once (one pipeline run, one "running" and one "done" event, one image), in the order the
 * server accepted them, one at a time, and each client's jobs in the order it sent them.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { JobCreated, JobList, JobStatus } from "../../src/server/api-types.js";
import type { SseEvent } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, startServer, tempDir, type TestServer } from "./harness.js";
import type { ServedModels } from "../../src/server/served-models.js";

const CLIENTS = 20;
const PER_CLIENT = 5;
const TOTAL = CLIENTS * PER_CLIENT;

describe.skipIf(!HAVE_REFERENCE)(`${TOTAL} jobs from ${CLIENTS} clients`, () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    // One step at 64 px: the queue is under test, not the model. Without provenance: signing each image would
    // only make the run longer.
    s = await startServer({
      cacheDir: cache.path,
      loadOptions: { threads: 1, cacheDir: cache.path, provenance: false },
    });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("complete exactly once each, in acceptance order, one at a time, each client's in its own order", async () => {
    // The embedded backend's model, hosted in this process.
    const pipe = await (s.app.context.model as ServedModels).get();
    const runs = vi.spyOn(pipe, "generate");
    const events: { id: string; event: SseEvent["event"] }[] = [];
    const publish = s.app.context.events.publish.bind(s.app.context.events);
    vi.spyOn(s.app.context.events, "publish").mockImplementation((id: string, e: SseEvent) => {
      events.push({ id, event: e.event });
      publish(id, e);
    });

    const byClient = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const ids: string[] = [];
        for (let k = 0; k < PER_CLIENT; k++) {
          const r = await fetch(`${s.base}/api/v1/jobs`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ prompt: `client ${c} job ${k}`, steps: 1, seed: c * 100 + k }),
          });
          expect(r.status).toBe(202);
          ids.push(((await r.json()) as JobCreated).id);
        }
        return ids;
      }),
    );

    const deadline = Date.now() + 100_000;
    let jobs: JobStatus[];
    for (;;) {
      jobs = (await getJson<JobList>(`${s.base}/api/v1/jobs?limit=${TOTAL}`)).jobs.reverse(); // acceptance order
      if (jobs.every((j) => j.state !== "queued" && j.state !== "running")) break;
      if (Date.now() > deadline)
        throw new Error(
          `${jobs.filter((j) => j.state === "queued" || j.state === "running").length} jobs not finished`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
    vi.restoreAllMocks();

    const submitted = byClient.flat();
    expect(new Set(submitted).size).toBe(TOTAL);
    expect(new Set(jobs.map((j) => j.id))).toEqual(new Set(submitted));
    expect(jobs.map((j) => j.state)).toEqual(Array(TOTAL).fill("done"));

    // Exactly once: one pipeline run per job, one running and one done event, one image each, none shared.
    // (The pipeline is told the job by its prompt, unique to each.)
    const idOfPrompt = new Map(jobs.map((j) => [j.params.prompt, j.id]));
    const ran = runs.mock.calls.map(([p]) => idOfPrompt.get(p.prompt));
    expect(runs).toHaveBeenCalledTimes(TOTAL);
    expect(new Set(ran).size).toBe(TOTAL);
    for (const id of submitted) {
      expect(
        events.filter((e) => e.id === id && e.event === "running"),
        id,
      ).toHaveLength(1);
      expect(
        events.filter((e) => e.id === id && e.event === "done"),
        id,
      ).toHaveLength(1);
      expect(
        events.filter((e) => e.id === id && (e.event === "error" || e.event === "cancelled")),
        id,
      ).toHaveLength(0);
    }
    expect(jobs.every((j) => j.images.length === 1)).toBe(true);
    expect(new Set(jobs.map((j) => j.images[0]!.id)).size).toBe(TOTAL);
    for (const j of jobs) {
      expect(j.images[0]!.infotext).toContain(j.params.prompt);
      expect(j.images[0]!.infotext).toContain(`Seed: ${j.params.seed}`);
    }

    // In acceptance order: the pipeline ran the jobs in the order the server lists them, one after another.
    expect(ran).toEqual(jobs.map((j) => j.id));
    expect(events.filter((e) => e.event === "running").map((e) => e.id)).toEqual(jobs.map((j) => j.id));
    for (let k = 1; k < TOTAL; k++)
      expect(jobs[k]!.started_at! >= jobs[k - 1]!.finished_at!, `job ${k} started before job ${k - 1} finished`).toBe(
        true,
      );
    // Each client's jobs in the order it sent them.
    const position = new Map(jobs.map((j, i) => [j.id, i]));
    for (const ids of byClient) {
      const positions = ids.map((id) => position.get(id)!);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    }
  });
});
