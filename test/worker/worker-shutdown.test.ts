/**
 * A `diffuse worker` stops when it is told to, whatever state its queue is in: idle or mid-job, with its Redis there
 * or gone; a second signal ends it at once; and while Redis is gone it waits for it with little CPU. Each worker is a
 * real process against a redis-server of the test's own, with the tiny model.
 */
import { readFileSync } from "node:fs";
import { Queue } from "bullmq";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { GENERATE, generationQueueName, KEY_PREFIX, toQueuedGeneration } from "../../src/worker/queue-protocol.js";
import { connectionOptions, parseQueueUrl } from "../../src/worker/queue-url.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { startRedis, type TestRedis } from "../helpers/redis-server.js";
import { kill9, spawnDiffuse, until, type DiffuseProcess } from "../server/fleet.js";
import { tempDir, TINY_MODEL } from "../server/harness.js";

const READY = /diffuse worker (\S+) ready/;
/** Generous: the bound is what matters (before, such a worker never exited), not its value. */
const EXIT_WITHIN_MS = 10_000;

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (fields 14 and 15, in clock ticks). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8")
    .replace(/^.*\) /, "")
    .split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The share of one core `pid` uses over `ms`. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
}

/** The exit code, or "still running" when the process has not exited within `ms`. */
async function exitWithin(p: DiffuseProcess, ms: number): Promise<number | null | "still running"> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"still running">((r) => (timer = setTimeout(() => r("still running"), ms)));
  try {
    return await Promise.race([p.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(!HAVE_REFERENCE)("diffuse worker shutdown", () => {
  const cache = tempDir("diffuse-cache-");
  let redis: TestRedis | undefined;
  let worker: DiffuseProcess | undefined;

  afterAll(() => cache.remove());
  afterEach(async () => {
    if (worker) await kill9(worker);
    await redis?.stop();
    worker = undefined;
    redis = undefined;
  });

  async function startWorker(): Promise<DiffuseProcess> {
    redis = await startRedis();
    worker = await spawnDiffuse(
      ["worker", "--queue", redis.url, "--model", TINY_MODEL, "--name", "w", "--threads", "1", "--no-provenance"],
      READY,
      {
        DIFFUSE_CACHE: cache.path,
      },
    );
    return worker;
  }

  /** Queues a job of `steps` steps and waits until the worker is some steps into it. */
  async function startJob(w: DiffuseProcess, steps: number): Promise<void> {
    const q = new Queue(generationQueueName("sd15-tiny"), {
      connection: connectionOptions(parseQueueUrl(redis!.url)),
      prefix: KEY_PREFIX,
    });
    try {
      await q.add(
        GENERATE,
        toQueuedGeneration({ prompt: "a long job", steps, width: 64, height: 64, seed: 1 }, undefined),
        { jobId: "long", attempts: 2 },
      );
      await until(
        async () => ((await q.getJob("long"))?.progress as { step?: number } | undefined)?.step !== undefined,
        "the job's first steps",
      );
    } finally {
      await q.close();
    }
    expect(w.stderr()).toMatch(/job long: started/);
  }

  it("with its Redis killed, an idle worker uses little CPU while it retries, says it cannot reach Redis, and SIGTERM ends it", async () => {
    const w = await startWorker();
    await redis!.kill();
    await until(
      () => /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/.test(w.stderr()),
      "the worker to say it cannot reach Redis",
      10_000,
    );
    expect(await cpuShare(w.child.pid!, 2000)).toBeLessThan(0.3);
    w.child.kill("SIGTERM");
    expect(await exitWithin(w, EXIT_WITHIN_MS)).toBe(0);
  });

  it("with its Redis killed mid-job, SIGTERM ends the worker (its job is left to be retried)", async () => {
    const w = await startWorker();
    await startJob(w, 150);
    await redis!.kill();
    // The first signal lets the job compute to its end (a few seconds), then gives up delivering it to a Redis that
    // is not there: its lock expires and another worker runs it again.
    w.child.kill("SIGTERM");
    expect(await exitWithin(w, EXIT_WITHIN_MS + 20_000)).toBe(0);
    expect(w.stderr()).toMatch(/job long: not delivered/);
  });

  it("a second SIGTERM ends a worker that is finishing its job at once", async () => {
    const w = await startWorker();
    // A job of several seconds: the first signal waits for it, the second does not.
    await startJob(w, 1000);
    w.child.kill("SIGTERM");
    await until(() => /SIGTERM: stopping after the running job/.test(w.stderr()), "the first signal to be taken");
    expect(await exitWithin(w, 1000)).toBe("still running");
    w.child.kill("SIGTERM");
    expect(await exitWithin(w, 3000)).toBe(143);
    expect(w.stderr()).not.toMatch(/job long: done/);
  });
});
