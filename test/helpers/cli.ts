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

/**
 * Spawns `diffuse ARGS` at a terminal (a pseudo-terminal by util-linux's `script`), typing `answer` and Enter when
 * the CLI asks a [y/N] question, as a user would. stdout and stderr arrive together, as a terminal shows them, in
 * `stdout` (carriage returns removed); `asked` says whether the question came.
 */
export function runCliAtTerminal(
  args: string[],
  answer: string,
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CliResult & { asked: boolean }> {
  return new Promise((resolvePromise, reject) => {
    const cli = cliCommand(args);
    const line = [cli.command, ...cli.args].map(shellQuote).join(" ");
    // -q: no "Script started" lines; -e: the command's exit status; -c: the command; /dev/null: no typescript file.
    const child = spawn("script", ["-qec", line, "/dev/null"], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env, SHELL: "/bin/sh" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "",
      asked = false;
    child.stdout.on("data", (d) => {
      out += d;
      if (!asked && out.includes("[y/N]")) {
        asked = true;
        child.stdin.write(`${answer}\n`);
      }
    });
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout: out.replaceAll("\r", ""), stderr: "", asked }));
  });
}

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
