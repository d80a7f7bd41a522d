import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { guardChild } from "./child-guard.js";

const REDIS_SERVER = "/usr/bin/redis-server";

export interface TestRedis {
  port: number;
  /** The running redis-server's process id (a new one after each restart). */
  readonly pid: number | undefined;
  /** redis://127.0.0.1:PORT (with the password when there is one). */
  url: string;
  /** The folder holding its append-only file. */
  dir: string;
  /** Kills it (SIGKILL: no chance to write anything more) and waits for it to be gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder: what the append-only file holds comes back. */
  restart(): Promise<void>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

/** A free loopback port (the kernel's pick for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of the test's own: loopback only, a free port, a temporary folder, the append-only file on with
 * a sync per write (so a SIGKILL loses nothing it acknowledged), no RDB snapshots. Never a system service.
 */
export async function startRedis(opts: { password?: string } = {}): Promise<TestRedis> {
  if (!existsSync(REDIS_SERVER))
    throw new Error(`${REDIS_SERVER} not found: install Debian's redis-server (apt-get install redis-server)`);
  const dir = mkdtempSync(join(tmpdir(), "diffuse-redis-"));
  const port = await freePort();
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
    "--daemonize",
    "no",
  ];
  if (opts.password) args.push("--requirepass", opts.password);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const c = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
      child = c;
      guardChild(c);
      exited = new Promise((r) => c.once("exit", () => r()));
      let out = "";
      c.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (/Ready to accept connections/.test(out)) resolve();
      });
      c.stderr!.on("data", (d: Buffer) => (out += d.toString()));
      void exited.then(() => reject(new Error(`redis-server exited before it was ready:\n${out}`)));
    });
  await launch();
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : "";
  return {
    port,
    get pid() {
      return child?.pid;
    },
    url: `redis://${auth}127.0.0.1:${port}`,
    dir,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
