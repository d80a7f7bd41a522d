/**
 * What a new user types in the first minutes: --version, the list of samplers, A1111's --negative-prompt, a typo in an
 * option, and options that make no sense on their own, each answered with something to act on.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/cli.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-usage-cache-"));
const env = { DIFFUSE_CACHE: cacheDir };
const PACKAGE = JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8")) as {
  version: string;
};

// Each test is its own process, and only one generates (the others end before any model is loaded): side by side
// they use both cores, where one at a time each spends most of its second loading modules on one.
describe.concurrent("the CLI's usage", () => {
  it("prints the package version for --version", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(PACKAGE.version);
  });

  it("lists samplers and schedule types with diffuse samplers, and in generate --help", async () => {
    const r = await runCli(["samplers"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^euler-a\s+Euler a$/m);
    expect(r.stdout).toMatch(/^dpm\+\+2m-karras\s+DPM\+\+ 2M Karras$/m);
    expect(r.stdout).toMatch(/^dpm2-a\s+DPM2 a$/m);
    expect(r.stdout).toMatch(/^dpm\+\+3m-sde\s+DPM\+\+ 3M SDE$/m);
    expect(r.stdout).toMatch(/^restart\s+Restart$/m);
    expect(r.stdout).toMatch(/Schedule types/);
    expect(r.stdout).toMatch(/^Karras$/m);
    const help = await runCli(["generate", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/euler-a \(Euler a\)/);
    expect(help.stdout).toMatch(/dpm\+\+2m-karras/);
    expect(help.stdout).toMatch(/--negative-prompt <text>/);
  });

  it("takes --negative-prompt as A1111 users type it, and records it in the image", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-usage-"));
    const out = join(dir, "neg.png");
    const r = await runCli(
      ["generate", "a circle", "--negative-prompt", "squares", "--steps", "1", "--no-progress", "-o", out],
      { env },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const info = await runCli(["info", out, "--json"]);
    expect(JSON.parse(info.stdout).parameters.negativePrompt).toBe("squares");
  });

  it("suggests the option meant on a typo", async () => {
    const r = await runCli(["generate", "a circle", "--negativ-prompt", "x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--negativ-prompt'/);
    expect(r.stderr).toMatch(/Did you mean --negative-prompt\?/);
  });

  const refused: [string, string[], RegExp][] = [
    ["--strength without --init", ["--strength", "0.5"], /--strength needs --init/],
    ["--threads 0", ["--threads", "0"], /--threads 0.*whole number of threads from 1/],
    ["--precision int16", ["--precision", "int16"], /--precision "int16": expected one of fp32, int8/],
    ["-W 0", ["-W", "0"], /width must be a multiple of 8 between 8 and \d+.*e\.g\. (64|512)\b/],
  ];
  for (const [what, args, message] of refused) {
    it(`exits 2 with one line naming the problem, and writes nothing, for ${what}`, async () => {
      const cwd = mkdtempSync(join(tmpdir(), "diffuse-usage-refused-"));
      const r = await runCli(["generate", "a circle", "--no-progress", ...args], { env, cwd });
      expect(r.code).toBe(2);
      // One error line (the embedded model's notice may come before it).
      const errors = r.stderr.split("\n").filter((l) => l.startsWith("diffuse:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(readdirSync(cwd)).toEqual([]);
    });
  }
});
