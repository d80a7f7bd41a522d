import { cpSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const MODEL = join(import.meta.dirname, "../../models/tiny-shapes");
const freshCache = () => ({ DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-calibrate-cache-")) });

describe("diffuse calibrate", () => {
  it("writes the calibration into the model folder; generate --precision int8 then calibrates nothing", async () => {
    const model = join(mkdtempSync(join(tmpdir(), "diffuse-cli-calibrate-")), "tiny-shapes");
    cpSync(MODEL, model, { recursive: true });
    const r = await runCli(["calibrate", "--model", model, "--threads", "1"], { env: freshCache() });
    expect(r.stderr).toMatch(/calibrating the int8 unet/);
    expect(r.code).toBe(0);
    const file = join(model, "diffuse-int8-calibration.json");
    expect(r.stdout).toContain(`wrote ${file}`);
    expect(JSON.parse(readFileSync(file, "utf8")).networks).toHaveProperty("vae_decoder");

    const out = join(model, "..", "star.png");
    const g = await runCli(
      ["generate", "a red star", "--model", model, "--precision", "int8", "--steps", "2", "--threads", "1", "-o", out],
      { env: freshCache() },
    );
    expect(g.code).toBe(0);
    expect(g.stderr).toMatch(/int8 unet: using the calibration shipped with the model/);
    expect(g.stderr).not.toMatch(/calibrating/);
    expect(existsSync(out)).toBe(true);
  }, 120_000);

  it.concurrent("says in --help where the file goes and what an int8 load does with it", async () => {
    const help = await runCli(["calibrate", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--out <file>/);
    expect(help.stdout).toMatch(/diffuse-int8-calibration\.json/);
    expect(help.stdout).toMatch(/<file>\.int8-calibration\.json/);
    expect(help.stdout).toMatch(/ignored/);
    const all = await runCli(["--help"]);
    expect(all.stdout).toMatch(/^ {2}calibrate\b/m);
  });

  it.concurrent("refuses a missing --model and an --out in a folder that does not exist, before any work", async () => {
    const none = await runCli(["calibrate"], { env: freshCache() });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/calibrate needs --model/);
    const out = join(tmpdir(), "no-such-folder-diffuse", "c.json");
    const bad = await runCli(["calibrate", "--model", MODEL, "--out", out], { env: freshCache() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${out}: the folder`);
    expect(bad.stderr).not.toMatch(/calibrating/);
  });
});
