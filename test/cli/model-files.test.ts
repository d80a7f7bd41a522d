import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

/**
 * A named pipe given as the model. Opening one for reading waits for a writer, so before the fix `diffuse inspect
 * fifo` hung forever; the CLI runs in a child process killed after a deadline, so a regression fails the test (no
 * exit code, no message) instead of hanging the suite. The other model files are covered in test/weights.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const DEADLINE_MS = 60_000; // far above the few seconds these take; only a hang reaches it

function diffuse(args: string[], cacheDir: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/helpers/run-cli.ts"), ...args], {
      cwd: ROOT,
      env: { ...process.env, DIFFUSE_CACHE: cacheDir },
      stdio: ["ignore", "ignore", "pipe"],
      timeout: DEADLINE_MS,
      killSignal: "SIGKILL",
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stderr }));
  });
}

const dir = mkdtempSync(join(tmpdir(), "diffuse-fifo-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(process.platform !== "win32")("a named pipe given as the model", () => {
  it("inspect and generate exit 2 at once with one line saying what the path is", async () => {
    const fifo = join(dir, "model.safetensors");
    execFileSync("mkfifo", [fifo]);
    const runs = [["inspect", fifo], ["generate", "a cat", "--model", fifo, "-o", join(dir, "x.png")]];
    for (const args of runs) {
      const r = await diffuse(args, join(dir, "cache"));
      expect(r.signal, `killed after ${DEADLINE_MS} ms: the CLI hung`).toBeNull();
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^diffuse: .*model\.safetensors is a named pipe \(FIFO\), not a regular file; check the path/);
    }
  });
});
