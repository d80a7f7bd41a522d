import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { verifyImage } from "../../src/responsible/provenance/index.js";
import { runCli } from "../helpers/cli.js";
import { cliCommand } from "../helpers/compiled-cli.js";

const temp = mkdtempSync(join(tmpdir(), "diffuse-modules-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));
/** Where `generate` keeps its compile cache and its local C2PA identity in these tests, not the user's. */
const env = { ...process.env, DIFFUSE_CACHE: join(temp, "cache"), XDG_CONFIG_HOME: join(temp, "config") };

/**
 * Runs `diffuse ARGS` with a module hook that records every module the process resolves (ESM imports, and the entry
 * of each CommonJS package they import), and returns the exit status and those module URLs.
 */
function modulesLoadedBy(args: string[]): { code: number | null; stdout: string; stderr: string; modules: string[] } {
  const log = join(mkdtempSync(join(temp, "run-")), "modules.txt");
  const hook = `import { appendFileSync } from "node:fs";
export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + "\\n"); return r; }`;
  const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const cli = cliCommand(args);
  const r = spawnSync(cli.command, ["--import", `data:text/javascript,${encodeURIComponent(register)}`, ...cli.args], {
    encoding: "utf8",
    timeout: 60_000,
    env,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, modules: readFileSync(log, "utf8").trim().split("\n") };
}

const SERVER_STACK = /\/node_modules\/(fastify|bullmq|ioredis|better-sqlite3)\/|\/server\/[^/]+\.js$/;
/** The C2PA and X.509 libraries: about 0.45 s of CPU to load, needed only to sign or verify content credentials. */
const SIGNING_LIBRARIES = /\/node_modules\/(@trustnxt\/c2pa-ts|@peculiar\/x509|pkijs)\//;
const signingLibrariesIn = (modules: string[]) => modules.filter((m) => SIGNING_LIBRARIES.test(m));

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

  it("diffuse --version loads no command's module", () => {
    const r = modulesLoadedBy(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(
      JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version,
    );
    expect(r.modules.filter((m) => /\/cli\/(?!main\.js|package-version\.js)[^/]+\.js$/.test(m))).toEqual([]);
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

  // Every start also paid for the C2PA and X.509 libraries (a third of the module loading), though only an image
  // being signed or verified uses them.
  it("generate --help, info and a refused prompt load none of the signing libraries", () => {
    const help = modulesLoadedBy(["generate", "--help"]);
    expect(help.code).toBe(0);
    expect(signingLibrariesIn(help.modules)).toEqual([]);

    const info = modulesLoadedBy(["info", join(temp, "missing.png")]);
    expect(info.code).toBe(2);
    expect(info.stderr).toMatch(/missing\.png/);
    expect(info.modules.some((m) => m.includes("/cli/info.js"))).toBe(true);
    expect(signingLibrariesIn(info.modules)).toEqual([]);

    const rules = join(temp, "rules.json");
    writeFileSync(rules, JSON.stringify([{ term: "forbidden thing", reason: "not allowed on this machine" }]));
    const out = join(temp, "refused.png");
    const refused = modulesLoadedBy(["generate", "a forbidden thing", "--policy", rules, "-o", out]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/not allowed on this machine/);
    expect(existsSync(out)).toBe(false);
    expect(signingLibrariesIn(refused.modules)).toEqual([]);
  });

  it("a signed generate loads them when it signs, and its image carries a valid C2PA manifest", async () => {
    const out = join(temp, "signed.png");
    const r = modulesLoadedBy(["generate", "a red circle", "--seed", "3", "-o", out]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    // The hook sees the libraries when they load: their absence above is not the hook missing them.
    expect(r.modules.some((m) => m.includes("/node_modules/@trustnxt/c2pa-ts/"))).toBe(true);
    expect(r.modules.some((m) => m.includes("/node_modules/@peculiar/x509/"))).toBe(true);
    const report = await verifyImage(readFileSync(out));
    expect(report).toMatchObject({ manifestFound: true, valid: true });
  });
});
