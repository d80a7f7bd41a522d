import { spawn, type ChildProcess } from "node:child_process";
import { guardChild } from "../helpers/child-guard.js";
import { cliCommand } from "../helpers/compiled-cli.js";

/** A `diffuse` process of a test (server or worker), its output kept. */
export interface DiffuseProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** What `ready` matched. */
  match: RegExpExecArray;
}

/**
 * Spawns `diffuse ARGS` from the current sources and resolves once its stderr matches `ready`; rejects with its
 * output when it exits first.
 */
export function spawnDiffuse(args: string[], ready: RegExp, env: Record<string, string> = {}): Promise<DiffuseProcess> {
  const cli = cliCommand(args);
  const child = spawn(cli.command, cli.args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  guardChild(child);
  let err = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stdout!.resume();
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const match = ready.exec(err);
      if (match) resolve({ child, exited, stderr: () => err, match });
    });
    void exited.then((code) => reject(new Error(`diffuse ${args[0]} exited (${code}) before it was ready:\n${err}`)));
  });
}

/** SIGKILL: the process gets no chance to do anything more. */
export async function kill9(p: DiffuseProcess): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  await p.exited;
}

/** SIGTERM, and the exit code. */
export async function terminate(p: DiffuseProcess): Promise<number | null> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
  return p.exited;
}

/** The ids of the jobs a worker's log says it finished ("job ID: done in ..."), in order. */
export function jobsDoneBy(p: DiffuseProcess): string[] {
  return [...p.stderr().matchAll(/job (\S+): done in/g)].map((m) => m[1]!);
}

/** The ids of the jobs a worker's log says it started. */
export function jobsStartedBy(p: DiffuseProcess): string[] {
  return [...p.stderr().matchAll(/job (\S+): started/g)].map((m) => m[1]!);
}

/** Waits until `check` holds, polling every 20 ms; fails with `what` after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
