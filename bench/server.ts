/**
 * How `diffuse serve` answers while it generates: the latency of `GET /api/v1/jobs/:id` and `GET /sdapi/v1/progress`
 * polled every 100 ms during a full-size SD1.5 generation (random weights) at 512 px, and whether progress advances
 * at every step; then the queue's own cost per job (tiny model), against the same generations run directly.
 *
 *   npm run bench:server                                  [-- --steps 4 --size 512 --model-dir /tmp/sd15-random --cache-dir /tmp/sd15-cache]
 *   npm run bench:server -- --only overhead               the per-job overhead alone (embedded and BullMQ queues, tiny model)
 *
 * The server runs in its own process (`diffuse serve` from the sources), as in production, so the pollers' own
 * work does not count against its answers. The model folder (4.3 GB) is written to a temporary folder and removed
 * at the end, unless --model-dir names a folder to keep (and reuse on the next run). The first generation builds
 * the graphs (a few minutes for the UNet; --cache-dir keeps them for the next run): the figures cover that phase
 * and the generation after it separately. Each answer's time is given as the client saw it and as the server
 * spent it (its Server-Timing header), with the machine's load: on a shared machine the difference is the time
 * the processes waited for a core.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { PipelineWorker } from "../src/worker/pipeline-worker.js";
import { startRedis } from "../test/helpers/redis-server.js";
import { SD15 } from "../src/configs/pipeline.js";
import { randomCheckpoint } from "./random-checkpoint.js";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "4" },
    size: { type: "string", default: "512" },
    "model-dir": { type: "string" },
    "cache-dir": { type: "string" },
    only: { type: "string" },
    jobs: { type: "string", default: "30" },
  },
});

const root = resolve(import.meta.dirname, "..");
const TINY = join(root, "../shared/fixtures/reference/models/sd15-tiny");
const POLL_MS = 100;
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Child {
  /** The URL it listens on (a server), or its name (a worker). */
  ready: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `diffuse ARGS` (serve or worker) in a child process, resolved once its stderr matches `ready`. */
function spawnCli(argv: string[], work: string, ready: RegExp): Promise<Child> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "diffuse-cli.ts"), ...argv], {
    // A cache and a signing identity of its own: nothing of the user's is read or written.
    env: {
      ...process.env,
      DIFFUSE_CACHE: args["cache-dir"] ? resolve(args["cache-dir"]) : join(work, "cache"),
      XDG_CONFIG_HOME: join(work, "config"),
    },
    stdio: ["ignore", "inherit", "pipe"],
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return new Promise((resolvePromise, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      const text = d.toString();
      err += text;
      process.stderr.write(text.replace(/^(?=.)/gm, `  ${argv[0]}: `));
      const m = ready.exec(err);
      if (m) resolvePromise({ ready: m[1]!, child, stop: async () => (child.kill("SIGTERM"), await exited) });
    });
    void exited.then(() => reject(new Error(`diffuse ${argv[0]} exited before it was ready:\n${err}`)));
  });
}

/** `diffuse serve --model <model>` on a free port. */
function serve(model: string, work: string, extra: string[] = []): Promise<Child> {
  return spawnCli(
    ["serve", "--model", model, "--port", "0", "--data", join(work, `data-${Date.now()}`), ...extra],
    work,
    /diffuse serving (\S+)/,
  );
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(`${init?.method ?? "GET"} ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

async function submit(base: string, body: Record<string, unknown>): Promise<string> {
  return (
    await json<{ id: string }>(`${base}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    })
  ).id;
}

interface JobStatus {
  state: string;
  progress: { step: number; steps: number } | null;
  error: string | null;
}

interface PollStats {
  latencies: number[];
  /** The time the server says it spent on each (Server-Timing app;dur): the rest is the machine and the network. */
  server: number[];
  /** Every distinct step an answer reported, in the order seen. */
  steps: number[];
}

/** Polls `url` every POLL_MS (from one answer to the next request) until `done()`; records each answer's time. */
async function poll(
  url: string,
  stepOf: (body: unknown) => number | undefined,
  done: () => boolean,
): Promise<PollStats> {
  const stats: PollStats = { latencies: [], server: [], steps: [] };
  while (!done()) {
    const t0 = performance.now();
    const r = await fetch(url);
    const body = (await r.json()) as unknown;
    stats.latencies.push(performance.now() - t0);
    stats.server.push(Number(/app;dur=([\d.]+)/.exec(r.headers.get("server-timing") ?? "")?.[1] ?? NaN));
    if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${JSON.stringify(body)}`);
    const step = stepOf(body);
    if (step !== undefined && step !== stats.steps.at(-1)) stats.steps.push(step);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return stats;
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
};

function row(name: string, s: PollStats): string {
  const l = s.latencies;
  const f = (x: number) => x.toFixed(1).padStart(8);
  return `${name.padEnd(26)} ${String(l.length).padStart(6)} ${f(pct(l, 0.5))} ${f(pct(l, 0.99))} ${f(Math.max(...l))}   ${f(pct(s.server, 0.99))} ${f(Math.max(...s.server))}`;
}

/** One job, watched by both pollers from submission to its end. */
async function watchedJob(
  base: string,
  body: Record<string, unknown>,
): Promise<{ status: JobStatus; jobs: PollStats; progress: PollStats; seconds: number }> {
  const t0 = performance.now();
  const id = await submit(base, body);
  let finished = false;
  const jobs = poll(
    `${base}/api/v1/jobs/${id}`,
    (b) => (b as JobStatus).progress?.step,
    () => finished,
  );
  const progress = poll(
    `${base}/sdapi/v1/progress?skip_current_image=false`,
    (b) => (b as { state: { sampling_step: number } }).state.sampling_step || undefined,
    () => finished,
  );
  let status: JobStatus;
  for (;;) {
    status = await json<JobStatus>(`${base}/api/v1/jobs/${id}`);
    if (status.state !== "queued" && status.state !== "running") break;
    await new Promise((r) => setTimeout(r, 250));
  }
  finished = true;
  return { status, jobs: await jobs, progress: await progress, seconds: (performance.now() - t0) / 1000 };
}

async function latency(work: string): Promise<void> {
  const steps = Number(args.steps);
  const size = Number(args.size);
  const modelDir = args["model-dir"] ? resolve(args["model-dir"]) : join(work, "models");
  log(`a full-size SD1.5 with random weights (diffusers folder, fp32, 4.3 GB) in ${modelDir}...`);
  const t0 = performance.now();
  const model = randomCheckpoint(modelDir, SD15, { layout: "diffusers", dtype: "F32" });
  log(`${model.written ? "written" : "reused"}: ${model.path} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  const load0 = loadavg()[0]!;
  const server = await serve(model.path, work);
  const base = server.ready;
  try {
    log(`cold: first job (${size} px, 1 step): the worker builds and loads the graphs`);
    const cold = await watchedJob(base, {
      prompt: "a lighthouse at dusk",
      steps: 1,
      width: size,
      height: size,
      seed: 1,
    });
    if (cold.status.state !== "done") throw new Error(`the first job ended ${cold.status.state}: ${cold.status.error}`);
    log(`warm: ${size} px, ${steps} steps`);
    const warm = await watchedJob(base, { prompt: "a lighthouse at dusk", steps, width: size, height: size, seed: 2 });
    if (warm.status.state !== "done") throw new Error(`the job ended ${warm.status.state}: ${warm.status.error}`);
    const all = (a: PollStats, b: PollStats): PollStats => ({
      latencies: [...a.latencies, ...b.latencies],
      server: [...a.server, ...b.server],
      steps: b.steps,
    });
    console.log(
      `\ndiffuse serve, full-size SD1.5 (random weights), ${size}x${size}, polled every ${POLL_MS} ms from another process`,
    );
    console.log(
      `cold job (graph build + 1 step) ${cold.seconds.toFixed(1)} s; warm job (${steps} steps) ${warm.seconds.toFixed(1)} s\n`,
    );
    console.log(
      `load average (1 min) at the start ${load0.toFixed(2)}, at the end ${loadavg()[0]!.toFixed(2)}, on ${availableParallelism()} cores`,
    );
    console.log(
      `${"".padEnd(26)} ${"".padStart(6)} ${"answered by the client".padStart(26)}   ${"in the server".padStart(17)}`,
    );
    console.log(
      `${"request (phase)".padEnd(26)} ${"count".padStart(6)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"max ms".padStart(8)}   ${"p99 ms".padStart(8)} ${"max ms".padStart(8)}`,
    );
    console.log(row("jobs/:id (cold)", cold.jobs));
    console.log(row("sdapi progress (cold)", cold.progress));
    console.log(row("jobs/:id (warm)", warm.jobs));
    console.log(row("sdapi progress (warm)", warm.progress));
    const jobsAll = all(cold.jobs, warm.jobs);
    const progressAll = all(cold.progress, warm.progress);
    console.log(row("jobs/:id (whole run)", jobsAll));
    console.log(row("sdapi progress (whole run)", progressAll));
    const every = Array.from({ length: steps }, (_, i) => i + 1);
    const advances = (s: number[]) => every.every((k) => s.includes(k));
    console.log(
      `\nsteps seen by GET /api/v1/jobs/:id: ${warm.jobs.steps.join(", ")} (every step: ${advances(warm.jobs.steps) ? "yes" : "NO"})`,
    );
    console.log(
      `steps seen by GET /sdapi/v1/progress: ${warm.progress.steps.join(", ")} (every step: ${advances(warm.progress.steps) ? "yes" : "NO"})`,
    );
    const ok = (s: PollStats) => pct(s.latencies, 0.99) < 100 && Math.max(...s.latencies) < 250;
    console.log(
      `target p99 < 100 ms and worst < 250 ms over the whole run: jobs/:id ${ok(jobsAll) ? "met" : "MISSED"}, sdapi progress ${ok(progressAll) ? "met" : "MISSED"}`,
    );
  } finally {
    await server.stop();
  }
}

/** CPU time (user + system) a process has used so far, in ms, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8")
    .replace(/^.*\) /, "")
    .split(" ");
  // utime and stime, fields 14 and 15 of stat (12 and 13 after the command name), in clock ticks (100 per second).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Jobs through a server one after another, each timed from the submit to its done event (the client's view). */
async function throughServer(base: string, n: number, body: (i: number) => Record<string, unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n + 1; i++) {
    const t0 = performance.now();
    const id = await submit(base, body(i));
    const res = await fetch(`${base}/api/v1/jobs/${id}/events`);
    const text = await res.text();
    if (!/event: done/.test(text)) throw new Error(`job ${id} did not finish: ${text}`);
    // The first job of a server pays for its warm-up.
    if (i > 0) ms.push(performance.now() - t0);
  }
  return ms;
}

/**
 * The queue's cost per job: the same 1-step 64 px generations on the tiny model, one after another, straight
 * through a PipelineWorker in this process, through `diffuse serve` (embedded queue: submit, SQLite, the worker
 * thread, the PNG written and recorded, the done event), and through `diffuse serve --queue` with one
 * `diffuse worker` and a redis-server (BullMQ: the job added, taken by the worker, progress and result through
 * Redis, stored by the server). The difference of the medians is what each queue adds to a job's latency; the API
 * server's CPU time per job bounds how many jobs per second one API server can take in, whatever the workers.
 */
async function overhead(work: string): Promise<void> {
  const n = Number(args.jobs);
  const body = (i: number) => ({ prompt: `overhead ${i}`, steps: 1, width: 64, height: 64, seed: i });
  const direct = await PipelineWorker.start(TINY, { threads: 1, cacheDir: join(work, "cache") });
  const directMs: number[] = [];
  try {
    for (let i = 0; i < n + 1; i++) {
      const t0 = performance.now();
      const r = await direct.generate(body(i));
      await r.images[0]!.png();
      if (i > 0) directMs.push(performance.now() - t0);
    }
  } finally {
    await direct.close();
  }

  const embedded = await serve(TINY, work, ["--threads", "1"]);
  let embeddedMs: number[];
  try {
    embeddedMs = await throughServer(embedded.ready, n, body);
  } finally {
    await embedded.stop();
  }

  const redis = await startRedis();
  const api = await serve(TINY, work, ["--queue", redis.url]);
  const worker = await spawnCli(
    ["worker", "--queue", redis.url, "--model", TINY, "--threads", "1"],
    work,
    /diffuse worker (\S+) ready/,
  );
  let redisMs: number[];
  let apiCpu: number;
  try {
    // One job first, so the server's own warm-up is not counted in its CPU time.
    await throughServer(api.ready, 0, body);
    const cpu0 = cpuMs(api.child.pid!);
    redisMs = await throughServer(api.ready, n, (i) => body(i + 1));
    apiCpu = (cpuMs(api.child.pid!) - cpu0) / (n + 1);
  } finally {
    await worker.stop();
    await api.stop();
    await redis.stop();
  }

  const d = pct(directMs, 0.5);
  const e = pct(embeddedMs, 0.5);
  const r = pct(redisMs, 0.5);
  console.log(
    `\nqueue overhead per job (tiny model, 1 step at 64 px, ${n} jobs one after another, medians, submit to done event):`,
  );
  console.log(`  straight through PipelineWorker (no queue):           ${d.toFixed(1)} ms`);
  console.log(
    `  diffuse serve, embedded queue:                        ${e.toFixed(1)} ms   overhead ${(e - d).toFixed(1)} ms per job`,
  );
  console.log(
    `  diffuse serve --queue + 1 diffuse worker (BullMQ):    ${r.toFixed(1)} ms   overhead ${(r - d).toFixed(1)} ms per job`,
  );
  console.log(
    `  API server CPU per job with the Redis queue: ${apiCpu.toFixed(1)} ms (one API server takes in at most ~${Math.floor(1000 / apiCpu)} jobs/s per core)`,
  );
}

async function run(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "diffuse-bench-server-"));
  try {
    if (args.only !== "overhead") await latency(work);
    if (args.only !== "latency") await overhead(work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await run();
