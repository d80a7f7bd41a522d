/**
 * Nothing accepted is lost across restarts. kill -9 twice while the same job runs: after the first, the job is
 * queued again at its place; after the second, it is failed with the reason (a job that kills the server must not
 * loop forever), and every other job still completes, in order. SIGTERM to `diffuse serve` itself (the CLI, not a
 * test entry point): it exits 0, the running job goes back to the queue without counting as a crash, and the next
 * start finishes everything.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { guardChild } from "../helpers/child-guard.js";
import { cliCommand } from "../helpers/compiled-cli.js";
import type { JobCreated, JobList, JobStatus } from "../../src/server/api-types.js";
import { JobStore } from "../../src/server/store.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { getJson, killLeftovers, postJson, spawnServer, tempDir, waitForJob, type ChildServer } from "./harness.js";

const running = (minStep: number) => (j: JobStatus) => j.state === "running" && (j.progress?.step ?? 0) >= minStep;

async function submit(base: string, jobs: { prompt: string; steps: number; seed: number }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const job of jobs) {
    const r = await postJson<JobCreated>(`${base}/api/v1/jobs`, job);
    expect(r.status).toBe(202);
    ids.push(r.body.id);
  }
  return ids;
}

describe.skipIf(!HAVE_REFERENCE)("kill -9 twice while the same job runs", () => {
  const cache = tempDir("diffuse-cache-");
  const data = tempDir("diffuse-kill-twice-");
  const children: ChildServer[] = [];
  afterAll(async () => {
    await killLeftovers(children);
    cache.remove();
    data.remove();
  });

  const start = async () => {
    const c = await spawnServer(data.path, cache.path);
    children.push(c);
    return c;
  };
  const kill9 = async (c: ChildServer) => {
    c.child.kill("SIGKILL");
    expect(await c.exited).toBeNull();
  };

  it("requeues the job after the first, fails it with the reason after the second, and completes the other jobs in order", async () => {
    const first = await start();
    const ids = await submit(first.base, [
      { prompt: "the job that dies", steps: 150, seed: 10 },
      { prompt: "second", steps: 2, seed: 11 },
      { prompt: "third", steps: 2, seed: 12 },
      { prompt: "fourth", steps: 2, seed: 13 },
    ]);
    await waitForJob(first.base, ids[0]!, 60_000, running(2));
    await kill9(first);

    const second = await start();
    expect(second.recovery).toEqual({ requeued: [ids[0]], failed: [] });
    // It runs first again (its place in the queue), and dies with the server a second time.
    await waitForJob(second.base, ids[0]!, 60_000, running(2));
    for (const id of ids.slice(1))
      expect((await getJson<JobStatus>(`${second.base}/api/v1/jobs/${id}`)).state).toBe("queued");
    await kill9(second);

    const third = await start();
    try {
      expect(third.recovery).toEqual({ requeued: [], failed: [ids[0]] });
      const rest: JobStatus[] = [];
      for (const id of ids.slice(1)) rest.push(await waitForJob(third.base, id, 60_000));
      expect(rest.map((j) => [j.state, j.images.length, j.params.seed])).toEqual([
        ["done", 1, 11],
        ["done", 1, 12],
        ["done", 1, 13],
      ]);
      for (let k = 1; k < rest.length; k++) expect(rest[k]!.started_at! >= rest[k - 1]!.finished_at!).toBe(true);
      const dead = await getJson<JobStatus>(`${third.base}/api/v1/jobs/${ids[0]}`);
      expect(dead.state).toBe("failed");
      expect(dead.error).toMatch(/stopped abruptly .* twice/);
      expect(dead.images).toEqual([]);
      // Nothing lost: the history holds the four jobs and no other.
      const listed = (await getJson<JobList>(`${third.base}/api/v1/jobs?limit=50`)).jobs.map((j) => j.id);
      expect(listed.sort()).toEqual([...ids].sort());
    } finally {
      third.child.kill("SIGTERM");
      await third.exited;
    }
  });
});

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface CliServer {
  base: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

/** `diffuse serve` from source, as a user runs it, resolved once it says where it listens. */
function serveCli(dataDir: string, env: Record<string, string>): Promise<CliServer> {
  const cli = cliCommand([
    "serve",
    "--model",
    ref("models/sd15-tiny"),
    "--data",
    dataDir,
    "--port",
    "0",
    "--threads",
    "1",
  ]);
  const child = spawn(cli.command, cli.args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  guardChild(child);
  let err = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /diffuse serving (http:\/\/\S+)/.exec(err);
      if (m) resolve({ base: m[1]!, child, exited, stderr: () => err });
    });
    void exited.then((code) => reject(new Error(`diffuse serve exited (${code}) before listening: ${err}`)));
  });
}

describe.skipIf(!HAVE_REFERENCE)("SIGTERM to diffuse serve", () => {
  const cache = tempDir("diffuse-cache-");
  const config = tempDir("diffuse-config-");
  const data = tempDir("diffuse-sigterm-");
  const env = { DIFFUSE_CACHE: cache.path, XDG_CONFIG_HOME: config.path, DIFFUSE_TOKEN: "" };
  const children: CliServer[] = [];
  afterAll(async () => {
    await killLeftovers(children);
    cache.remove();
    config.remove();
    data.remove();
  });

  it("exits 0 with the running job back in the queue, not counted as a crash; the next start completes every job in order", async () => {
    const first = await serveCli(data.path, env);
    children.push(first);
    const ids = await submit(first.base, [
      { prompt: "running at the signal", steps: 150, seed: 20 },
      { prompt: "queued one", steps: 2, seed: 21 },
      { prompt: "queued two", steps: 2, seed: 22 },
    ]);
    await waitForJob(first.base, ids[0]!, 60_000, running(2));
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.stderr()).toMatch(/SIGTERM: stopping; a running job goes back to the queue/);

    const store = JobStore.open(data.path);
    try {
      expect(ids.map((id) => store.get(id)!.state)).toEqual(["queued", "queued", "queued"]);
      expect(store.get(ids[0]!)!.interruptions).toBe(0);
    } finally {
      store.close();
    }

    const second = await serveCli(data.path, env);
    children.push(second);
    try {
      expect(second.stderr()).not.toMatch(/stopped abruptly|interrupted job/);
      const done: JobStatus[] = [];
      for (const id of ids) done.push(await waitForJob(second.base, id, 60_000));
      expect(done.map((j) => [j.state, j.images.length, j.params.seed])).toEqual([
        ["done", 1, 20],
        ["done", 1, 21],
        ["done", 1, 22],
      ]);
      expect(done[0]!.progress).toEqual({ step: 150, steps: 150 });
      for (let k = 1; k < done.length; k++) expect(done[k]!.started_at! >= done[k - 1]!.finished_at!).toBe(true);
    } finally {
      second.child.kill("SIGTERM");
      expect(await second.exited).toBe(0);
    }
  });
});
