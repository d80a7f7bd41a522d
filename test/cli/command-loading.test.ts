import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { cliCommand } from "../helpers/compiled-cli.js";

/**
 * Runs `diffuse ARGS` with a module hook that records every module the process resolves (ESM imports, and the entry
 * of each CommonJS package they import), and returns the exit status and those module URLs.
 */
function modulesLoadedBy(args: string[]): { code: number | null; stdout: string; modules: string[] } {
  const log = join(mkdtempSync(join(tmpdir(), "diffuse-modules-")), "modules.txt");
  const hook = `import { appendFileSync } from "node:fs";
export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + "\\n"); return r; }`;
  const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const cli = cliCommand(args);
  const r = spawnSync(cli.command, ["--import", `data:text/javascript,${encodeURIComponent(register)}`, ...cli.args], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, modules: readFileSync(log, "utf8").trim().split("\n") };
}

const SERVER_STACK = /\/node_modules\/(fastify|bullmq|ioredis|better-sqlite3)\/|\/server\/[^/]+\.js$/;

describe("each diffuse command loads only what it runs", () => {
  // Every start paid for the HTTP server, the queues and their databases, whatever the command: about half a second
  // of module loading before `generate` did anything.
  it("generate (its --help) loads neither the HTTP server nor the queue and database clients", () => {
    const r = modulesLoadedBy(["generate", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--sampler/);
    expect(r.modules.some((m) => m.includes("/cli/generate.js"))).toBe(true);
    expect(r.modules.filter((m) => SERVER_STACK.test(m))).toEqual([]);
  });

  it("diffuse --help still lists every command, and a typo of one is still answered with it", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    const names = ["generate", "inspect", "info", "verify", "serve", "worker", "detect", "pull", "models", "upscale"];
    for (const name of [...names, "samplers"]) expect(help.stdout).toMatch(new RegExp(`^  ${name}\\b`, "m"));
    const typo = await runCli(["generat", "a cat"]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/Did you mean generate\?/);
  });
});
