/**
 * `diffuse upscale`: A1111's Extras upscale from the command line. The output has the size asked for, A1111's
 * postprocessing infotext in the PNG "extras" chunk (the input's "parameters" kept), the robust watermark and a
 * C2PA manifest, as generated images do; bad input is refused with the fix and writes nothing.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { decodeImage, encodePng } from "../../src/image/codec.js";
import { readPngText, writePngText } from "../../src/image/png-text.js";
import { verifyImage } from "../../src/responsible/provenance/verify-image.js";
import { detectWatermark } from "../../src/responsible/watermark/detect.js";
import { runCli } from "../helpers/cli.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";
import { mulberry32 } from "../helpers/seeded-random.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";

afterAll(removeTempDirs);

async function inputPng(dir: string, w: number, h: number): Promise<string> {
  const r = mulberry32(w + h);
  // Smooth colours: the watermark is checked after, and noise would drown it at these sizes.
  const data = Uint8Array.from({ length: w * h * 3 }, (_, i) => {
    const p = Math.floor(i / 3);
    return Math.floor(128 + 60 * Math.sin((p % w) / 9 + (i % 3)) + 40 * Math.cos(Math.floor(p / w) / 7) + r() * 4);
  });
  const png = writePngText(await encodePng({ width: w, height: h, data }), [
    { keyword: "parameters", text: "a lighthouse\nSteps: 20, Seed: 1, Size: 64x64" },
  ]);
  const path = join(dir, "in.png");
  writeFileSync(path, png);
  return path;
}

describe("diffuse upscale", () => {
  it("--scale 4 with an ESRGAN model from an A1111 folder: size, infotext, watermark, C2PA", async () => {
    const dir = tempDir("cli-upscale");
    const a1111 = join(dir, "webui");
    mkdirSync(join(a1111, "models", "Stable-diffusion"), { recursive: true });
    mkdirSync(join(a1111, "models", "ESRGAN"), { recursive: true });
    copyFileSync(join(OWN_FIXTURES, "rrdbnet", "x4-old.pth"), join(a1111, "models", "ESRGAN", "tiny-4x.pth"));
    const input = await inputPng(dir, 40, 36);
    const out = join(dir, "out.png");
    const env = { DIFFUSE_HOME: join(dir, "home") };
    const list = await runCli(["upscale", "--list", "--models-dir", a1111], { env });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split("\n").map((l) => l.split("\t")[0])).toEqual(["None", "Lanczos", "Nearest", "tiny-4x", ""]);
    const r = await runCli(
      ["upscale", input, "--scale", "4", "--upscaler", "tiny-4x", "--models-dir", a1111, "-o", out, "--threads", "1"],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(out);
    const meta = await sharp(bytes).metadata();
    expect([meta.width, meta.height]).toEqual([160, 144]);
    const text = Object.fromEntries(readPngText(bytes).map((c) => [c.keyword, c.text]));
    expect(text.extras).toBe("Postprocess upscale by: 4, Postprocess upscaler: tiny-4x");
    expect(text.parameters).toBe("a lighthouse\nSteps: 20, Seed: 1, Size: 64x64");
    expect(detectWatermark(await decodeImage(bytes)).verdict).toMatch(/^robust/);
    const verified = await verifyImage(bytes);
    expect(verified.manifestFound).toBe(true);
    expect(verified.hashBinding).toBe("match");
    expect(verified.ingredients).toHaveLength(1); // the input image, by its hash
  });

  it("--width/--height with Lanczos crops to the size; --no-watermark and --no-provenance are written down", async () => {
    const dir = tempDir("cli-upscale-to");
    const input = await inputPng(dir, 50, 30);
    const out = join(dir, "to.png");
    const r = await runCli(
      ["upscale", input, "--width", "120", "--height", "100", "-o", out, "--no-watermark", "--no-provenance"],
      { env: { DIFFUSE_HOME: join(dir, "home") } },
    );
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(out);
    const meta = await sharp(bytes).metadata();
    expect([meta.width, meta.height]).toEqual([120, 100]);
    const extras = readPngText(bytes).find((c) => c.keyword === "extras")!.text;
    expect(extras).toBe(
      "Postprocess upscale to: 120x100, Postprocess crop to: 120x100, Postprocess upscaler: Lanczos, Watermark: off, Provenance: off",
    );
  });

  it("an unknown upscaler, a factor past 8 or a missing image are refused with the fix, writing nothing", async () => {
    const dir = tempDir("cli-upscale-bad");
    const input = await inputPng(dir, 16, 16);
    const out = join(dir, "never.png");
    const env = { DIFFUSE_HOME: join(dir, "home") };
    const unknown = await runCli(["upscale", input, "--upscaler", "4x-UltraSharp", "-o", out], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no upscaler named "4x-UltraSharp"; available: None, Lanczos, Nearest/);
    const big = await runCli(["upscale", input, "--scale", "9", "-o", out], { env });
    expect(big.code).toBe(2);
    expect(big.stderr).toMatch(/at most 8/);
    const missing = await runCli(["upscale", join(dir, "nope.png"), "-o", out], { env });
    expect(missing.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });
});
