import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const env = { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-cache-")) };

describe.skipIf(!HAVE_REFERENCE)("diffuse generate --schedule", () => {
  const model = ref("models/sd15-tiny");
  const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-schedule-"));

  it("Euler with --schedule Karras walks the Karras sigmas: another image, 'Schedule type: Karras' in its infotext", async () => {
    const run = async (name: string, extra: string[]) => {
      const out = join(dir, `${name}.png`);
      const r = await runCli(
        [
          "generate",
          "a red circle",
          "--model",
          model,
          "--sampler",
          "Euler",
          "--steps",
          "4",
          "--seed",
          "5",
          "-o",
          out,
          ...extra,
        ],
        { env },
      );
      expect(r.code, r.stderr).toBe(0);
      return out;
    };
    const plain = await run("plain", []);
    const karras = await run("karras", ["--schedule", "Karras"]);
    expect(readFileSync(karras).equals(readFileSync(plain))).toBe(false);
    const info = await runCli(["info", karras, "--json"], { env });
    expect(info.code).toBe(0);
    expect(JSON.parse(info.stdout).parameters.scheduleType).toBe("Karras");
    expect(JSON.parse(info.stdout).raw).toMatch(/Sampler: Euler, Schedule type: Karras, CFG scale/);
    const plainInfo = await runCli(["info", plain, "--json"], { env });
    expect(plainInfo.stdout).not.toMatch(/scheduleType/);
  });

  it("exits 2 with one line listing the schedule types for an unknown one, and writes nothing", async () => {
    const out = join(dir, "unknown.png");
    const r = await runCli(
      ["generate", "a cat", "--model", model, "--sampler", "Euler", "--schedule", "Karas", "-o", out],
      { env },
    );
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/unknown schedule type "Karas": use one of "Automatic", "Uniform", "Karras", .*"Beta"/);
    expect(existsSync(out)).toBe(false);
  });
});
