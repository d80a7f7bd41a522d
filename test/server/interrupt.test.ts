/**
 * A1111's POST /sdapi/v1/interrupt stops the running job at its next step boundary, as our DELETE does
 * (jobs.test.ts): the step recorded at the end is the one running when the interrupt was acted on, or the one
 * after it at most. Measured in steps, not milliseconds.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, startServer, tempDir, type TestServer } from "./harness.js";

describe.skipIf(!HAVE_REFERENCE)("interrupting an A1111 request", () => {
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

  it("stops the job within one step of the interrupt: no images, cancelled in the history at that step", async () => {
    const pending = fetch(`${s.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "slow", steps: 150, width: 64, height: 64 }),
    });
    type Progress = { state: { sampling_step: number } };
    for (let i = 0; i < 2000; i++) {
      if ((await getJson<Progress>(`${s.base}/sdapi/v1/progress?skip_current_image=true`)).state.sampling_step >= 3)
        break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const running = s.app.context.queue.running!;
    expect(running.progress!.step).toBeGreaterThanOrEqual(3);
    // Where the job was at the instant the server acted on the interrupt.
    let stepAtInterrupt = -1;
    running.abort.signal.addEventListener("abort", () => (stepAtInterrupt = running.progress!.step));
    const interrupt = await fetch(`${s.base}/sdapi/v1/interrupt`, { method: "POST" });
    expect(interrupt.status).toBe(200);

    const r = await pending;
    expect(r.status).toBe(200);
    expect(((await r.json()) as { images: string[] }).images).toEqual([]);
    const job = (await getJson<JobList>(`${s.base}/api/v1/jobs?limit=1`)).jobs[0]!;
    expect(job.id).toBe(running.id);
    expect(job.state).toBe("cancelled");
    expect(job.images).toEqual([]);
    expect(stepAtInterrupt).toBeGreaterThanOrEqual(3);
    expect(job.progress!.step - stepAtInterrupt).toBeGreaterThanOrEqual(0);
    expect(job.progress!.step - stepAtInterrupt).toBeLessThanOrEqual(1);
    expect(job.error).toBe(`cancelled at step ${job.progress!.step} of 150`);
  });

  it("with nothing running, the interrupt answers 200 and changes nothing", async () => {
    const before = (await getJson<JobList>(`${s.base}/api/v1/jobs?limit=5`)).jobs;
    expect((await fetch(`${s.base}/sdapi/v1/interrupt`, { method: "POST" })).status).toBe(200);
    expect((await getJson<JobList>(`${s.base}/api/v1/jobs?limit=5`)).jobs).toEqual(before);
  });
});
