/**
 * Without -o, generate files each image as AUTOMATIC1111 does, in a dated folder with a running number and the seed:
 * outputs/txt2img/YYYY-MM-DD/00000-SEED.png (image-to-image in outputs/img2img), so no run overwrites the last one.
 * The folder is --outdir, else $DIFFUSE_OUTDIR, else ./outputs; -o still names the exact file.
 */
import { describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../helpers/cli.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-outputs-cache-"));
const env = { DIFFUSE_CACHE: cacheDir };
const FAST = ["--steps", "2", "--no-progress"];

/** Today's folder name as the CLI writes it: the local date, YYYY-MM-DD. */
function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

describe("generate without -o", () => {
  it("writes two numbered files under ./outputs/txt2img/DATE when run twice, and prints their paths", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "diffuse-outputs-"));
    const first = await runCli(["generate", "a red circle", "--seed", "1234567", ...FAST], { env, cwd });
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    const second = await runCli(["generate", "a red circle", "--seed", "7", ...FAST], { env, cwd });
    expect(second.code).toBe(0);
    const folder = join(cwd, "outputs", "txt2img", today());
    expect(readdirSync(folder).sort()).toEqual(["00000-1234567.png", "00001-7.png"]);
    expect(first.stdout.trim()).toBe(join(folder, "00000-1234567.png"));
    expect(second.stdout.trim()).toBe(join(folder, "00001-7.png"));
    expect(existsSync(join(cwd, "out.png"))).toBe(false);
  });

  it("continues after the highest number already there, as A1111 does, and numbers each image of a batch", async () => {
    const outdir = mkdtempSync(join(tmpdir(), "diffuse-outdir-"));
    const folder = join(outdir, "txt2img", today());
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "00011-99.png"), "");
    writeFileSync(join(folder, "notes.txt"), "");
    const r = await runCli(["generate", "a circle", "--seed", "5", "--batch-size", "2", "--outdir", outdir, ...FAST], {
      env,
    });
    expect(r.code).toBe(0);
    expect(readdirSync(folder).sort()).toEqual(["00011-99.png", "00012-5.png", "00013-6.png", "notes.txt"]);
  });

  it("files image-to-image under img2img, in the folder $DIFFUSE_OUTDIR names", async () => {
    const outdir = mkdtempSync(join(tmpdir(), "diffuse-outdir-env-"));
    const init = join(outdir, "..", `${outdir.split("/").pop()}-init.png`);
    await sharp({ create: { width: 64, height: 64, channels: 3, background: "#808080" } })
      .png()
      .toFile(init);
    const r = await runCli(["generate", "a circle", "--init", init, "--seed", "3", ...FAST], {
      env: { ...env, DIFFUSE_OUTDIR: outdir },
    });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(readdirSync(join(outdir, "img2img", today()))).toEqual(["00000-3.png"]);
  });

  it("still writes exactly the file -o names, and nothing under outputs", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "diffuse-outputs-exact-"));
    const r = await runCli(["generate", "a circle", "-o", "mine.png", ...FAST], { env, cwd });
    expect(r.code).toBe(0);
    expect(readdirSync(cwd)).toEqual(["mine.png"]);
  });
});
