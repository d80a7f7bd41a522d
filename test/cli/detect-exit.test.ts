/**
 * `detect` answers scripts as `verify` does: exit 0 when it finds a watermark, 2 when it finds none (the report still
 * printed), 3 when a mark is there but unreadable; the two commands share one convention.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "diffuse-detect-exit-"));
const env = { DIFFUSE_CACHE: join(dir, "cache") };

// Side by side (one test generates, the others only read): each process spends most of its time loading modules on
// one core of two.
describe.concurrent("diffuse detect's exit status", () => {
  it("is 2, with the report on stdout and one line on stderr, for an image with no watermark", async () => {
    const plain = join(dir, "plain.png");
    await sharp({ create: { width: 256, height: 256, channels: 3, background: "#3060a0" } })
      .png()
      .toFile(plain);
    const r = await runCli(["detect", plain], { env });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/no watermark|none/i);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/no invisible watermark found/);
    const json = await runCli(["detect", plain, "--json"], { env });
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).verdict).toBe("none");
  });

  it("is 0 for an image diffuse watermarked", async () => {
    const out = join(dir, "marked.png");
    const gen = await runCli(
      ["generate", "a red circle", "-W", "128", "-H", "128", "--steps", "2", "--no-progress", "-o", out],
      { env },
    );
    expect(gen.code).toBe(0);
    const r = await runCli(["detect", out, "--json"], { env });
    expect(JSON.parse(r.stdout).verdict).toBe("robust");
    expect(r.code).toBe(0);
  });

  it("is documented the same way in verify's and detect's help", async () => {
    for (const command of ["verify", "detect"]) {
      const help = await runCli([command, "--help"]);
      expect(help.stdout).toMatch(/exit\s+0\s+\w+,\s+2\s+none,\s+3/);
    }
  });
});
