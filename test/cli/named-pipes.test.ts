import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { cliCommand } from "../helpers/compiled-cli.js";

/**
 * A named pipe given where a file is expected. Opening one for reading waits for a writer, so before the fix
 * `diffuse inspect fifo` (and `info`, `verify`) hung forever; the CLI runs in a child process killed after a
 * deadline, so a regression fails the test (no exit code, no message) instead of hanging the suite. The files
 * read from model folders are covered in test/weights/model-files.test.ts.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const DEADLINE_MS = 60_000; // far above the few seconds these take; only a hang reaches it

function diffuse(
  args: string[],
  cacheDir: string,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const cli = cliCommand(args);
    const child = spawn(cli.command, cli.args, {
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

async function expectRefused(args: string[], pattern: RegExp): Promise<void> {
  const r = await diffuse(args, join(dir, "cache"));
  expect(r.signal, `killed after ${DEADLINE_MS} ms: diffuse ${args[0]} hung`).toBeNull();
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe.runIf(process.platform !== "win32")("a named pipe given to the CLI", () => {
  it("as the model: inspect and generate exit 2 at once with one line saying what the path is", async () => {
    const fifo = join(dir, "model.safetensors");
    execFileSync("mkfifo", [fifo]);
    const said = /^diffuse: .*model\.safetensors is a named pipe \(FIFO\), not a regular file; check the path/;
    await expectRefused(["inspect", fifo], said);
    await expectRefused(["generate", "a cat", "--model", fifo, "-o", join(dir, "x.png")], said);
  });

  it("as the image to read: info and verify exit 2 at once with one line saying what the path is", async () => {
    const fifo = join(dir, "image.png");
    execFileSync("mkfifo", [fifo]);
    const said = /^diffuse: .*image\.png is a named pipe \(FIFO\), not a regular file/;
    await expectRefused(["info", fifo], said);
    await expectRefused(["verify", fifo], said);
  });

  it("as the prompt policy or the C2PA key and certificate: generate exits 2 saying what the path is", async () => {
    // Progress lines (graph builds on first use) may come first: the refusal is the last line.
    const refused = async (args: string[], pattern: RegExp) => {
      const r = await diffuse(args, join(dir, "cache"));
      expect(r.signal, `killed after ${DEADLINE_MS} ms: diffuse generate hung`).toBeNull();
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(pattern);
    };
    const model = join(ROOT, "models/tiny-shapes");
    const policy = join(dir, "policy.json");
    execFileSync("mkfifo", [policy]);
    await refused(
      ["generate", "a cat", "--model", model, "--policy", policy, "-o", join(dir, "p.png")],
      /^diffuse: .*policy\.json is a named pipe \(FIFO\), not a regular file; pass the path of the prompt policy/,
    );
    const key = join(dir, "signer.key");
    execFileSync("mkfifo", [key]);
    await refused(
      ["generate", "a cat", "--model", model, "--c2pa-key", key, "--c2pa-cert", key, "-o", join(dir, "k.png")],
      /^diffuse: .*signer\.key is a named pipe \(FIFO\), not a regular file; pass the path of the C2PA private key/,
    );
  });
});
