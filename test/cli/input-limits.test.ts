import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { solidPng } from "../helpers/png-bombs.js";

const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-limits-"));
const env = { DIFFUSE_CACHE: join(dir, "cache") };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!HAVE_REFERENCE)("diffuse generate with an oversized --init or --mask", () => {
  const model = ref("models/sd15-tiny");
  // 16383x16383 in a few KB. The largest generation is 4096x4096, so an input may declare at most 8192x8192.
  const huge = join(dir, "huge.png");
  writeFileSync(huge, solidPng(16383, 16383));

  it("exits 2 with one line naming the file, its size and the limit, for the init image and for the mask", async () => {
    const init = join(dir, "init.png");
    await sharp({ create: { width: 64, height: 64, channels: 3, background: "#808080" } })
      .png()
      .toFile(init);
    for (const args of [
      ["--init", huge],
      ["--init", init, "--mask", huge],
    ]) {
      const out = join(dir, "out.png");
      const r = await runCli(["generate", "a cat", "--model", model, "--steps", "2", "-o", out, ...args], { env });
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${huge} is 16383x16383`);
      expect(lines[0]).toContain("8192x8192");
      expect(existsSync(out)).toBe(false);
    }
  });
});
