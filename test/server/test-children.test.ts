/**
 * The services a test starts (redis-server, `diffuse worker`, `diffuse serve`) do not outlive it: when the test
 * process is killed outright (as vitest's is when a run is interrupted or times out), nothing of its afterAll runs,
 * and its children are ended by their guards (test/helpers/child-guard.ts) instead of going on as orphans.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { until } from "./fleet.js";
import { tempDir } from "./harness.js";

/** Whether `pid` is a live process (a zombie awaiting its reaper counts as ended). */
function alive(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe.skipIf(!HAVE_REFERENCE)("a test's child processes", () => {
  const dir = tempDir("diffuse-children-");
  const left: number[] = [];
  afterAll(() => {
    // Whatever the outcome, nothing of this test stays behind.
    for (const pid of left) if (alive(pid)) process.kill(pid, "SIGKILL");
    dir.remove();
  });

  it("end when the test process that started them is killed with SIGKILL", async () => {
    const entry = fileURLToPath(new URL("./children-entry.ts", import.meta.url));
    const parent = spawn(process.execPath, ["--import", "tsx", entry, dir.path], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    parent.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => parent.once("exit", () => resolve()));
    const pids = await new Promise<{ redis: number; worker: number }>((resolve, reject) => {
      parent.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const line = /^(\{.*\})$/m.exec(out);
        if (line) resolve(JSON.parse(line[1]!));
      });
      void exited.then(() => reject(new Error(`the test process ended before it started its children:\n${err}`)));
    });
    left.push(pids.redis, pids.worker);
    expect(alive(pids.redis) && alive(pids.worker)).toBe(true);
    parent.kill("SIGKILL");
    await exited;
    await until(() => !alive(pids.redis) && !alive(pids.worker), "the orphaned redis-server and worker to end", 10_000);
  });
});
