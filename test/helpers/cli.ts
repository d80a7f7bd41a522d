import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cliCommand } from "./compiled-cli.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Spawns `diffuse ARGS` from the current sources (compiled-cli.ts); `onSpawn` can signal the child (SIGINT tests). */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; onSpawn?: (child: ChildProcess) => void } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const cli = cliCommand(args);
    const child = spawn(cli.command, cli.args, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "",
      stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
    opts.onSpawn?.(child);
  });
}
