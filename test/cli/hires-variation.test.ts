import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";

const env = { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-cache-")) };

/** The decoded pixels of a PNG: the files differ by their signed provenance, the pixels must not. */
async function pixels(path: string): Promise<Buffer> {
  return sharp(readFileSync(path)).raw().toBuffer();
}

/** diffuse generate's flags for a request that `diffuse info --json` gives back. */
function flags(r: Record<string, unknown>): string[] {
  const h = (r["hires"] ?? {}) as Record<string, unknown>;
  const out = [
    r["prompt"] as string,
    "--steps",
    String(r["steps"]),
    "--cfg",
    String(r["cfgScale"]),
    "--seed",
    String(r["seed"]),
    "--sampler",
    String(r["sampler"]),
    "-W",
    String(r["width"]),
    "-H",
    String(r["height"]),
  ];
  if (r["subseed"] !== undefined) out.push("--subseed", String(r["subseed"]));
  if (r["subseedStrength"] !== undefined) out.push("--subseed-strength", String(r["subseedStrength"]));
  if (h["scale"] !== undefined) out.push("--hires", String(h["scale"]));
  if (h["upscaler"] !== undefined) out.push("--hires-upscaler", String(h["upscaler"]));
  if (h["steps"] !== undefined) out.push("--hires-steps", String(h["steps"]));
  if (h["denoisingStrength"] !== undefined) out.push("--hires-denoise", String(h["denoisingStrength"]));
  return out;
}

describe("diffuse generate --hires and --subseed on the embedded model", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-hires-"));
  // The robust watermark carries a random job id per run; off here so that a regenerated image can be compared.
  const common = ["--no-watermark"];

  for (const upscaler of ["Latent", "Lanczos"]) {
    it(`--hires 2 --hires-upscaler ${upscaler}: 64 -> 128 px; info --json gives the same request, which makes the same image`, async () => {
      const out = join(dir, `hires-${upscaler}.png`);
      const args = [
        "a blue square",
        "-W",
        "64",
        "-H",
        "64",
        "--steps",
        "3",
        "--seed",
        "11",
        "--subseed",
        "12",
        "--subseed-strength",
        "0.3",
        "--hires",
        "2",
        "--hires-upscaler",
        upscaler,
        "--hires-steps",
        "2",
        "--hires-denoise",
        "0.55",
      ];
      const r = await runCli(["generate", ...args, ...common, "-o", out], { env });
      expect(r.code, r.stderr).toBe(0);
      const meta = await sharp(readFileSync(out)).metadata();
      expect([meta.width, meta.height]).toEqual([128, 128]);
      const info = await runCli(["info", out, "--json"], { env });
      expect(info.code, info.stderr).toBe(0);
      const { raw, request } = JSON.parse(info.stdout) as { raw: string; request: Record<string, unknown> };
      expect(raw).toMatch(
        /Seed: 11, Size: 64x64, .*Variation seed: 12, Variation seed strength: 0.3, Denoising strength: 0.55, .*Hires upscale: 2, Hires steps: 2, Hires upscaler: /,
      );
      expect(request).toMatchObject({
        prompt: "a blue square",
        seed: 11,
        subseed: 12,
        subseedStrength: 0.3,
        width: 64,
        height: 64,
        steps: 3,
        hires: { scale: 2, upscaler, steps: 2, denoisingStrength: 0.55 },
      });
      const again = join(dir, `again-${upscaler}.png`);
      const r2 = await runCli(["generate", ...flags(request), ...common, "-o", again], { env });
      expect(r2.code, r2.stderr).toBe(0);
      expect((await pixels(again)).equals(await pixels(out))).toBe(true);
    });
  }

  it("--hires-upscaler names an ESRGAN model file of --models-dir's models/ESRGAN, as diffuse upscale does", async () => {
    const webui = join(dir, "webui");
    mkdirSync(join(webui, "models", "Stable-diffusion"), { recursive: true });
    mkdirSync(join(webui, "models", "ESRGAN"), { recursive: true });
    copyFileSync(join(OWN_FIXTURES, "rrdbnet", "x4-old.pth"), join(webui, "models", "ESRGAN", "tiny-esrgan-4x.pth"));
    const own = { ...env, DIFFUSE_HOME: join(dir, "home") };
    const args = ["a blue square", "-W", "64", "-H", "64", "--steps", "3", "--seed", "11", "--hires", "2"];
    const out = join(dir, "hires-esrgan.png");
    const r = await runCli(
      ["generate", ...args, "--hires-upscaler", "tiny-esrgan-4x", "--models-dir", webui, ...common, "-o", out],
      { env: own },
    );
    expect(r.code, r.stderr).toBe(0);
    const meta = await sharp(readFileSync(out)).metadata();
    expect([meta.width, meta.height]).toEqual([128, 128]);
    // Without the folder the name is unknown: one line listing the known ones (run beside the info of the image).
    const [info, missing] = await Promise.all([
      runCli(["info", out, "--json"], { env: own }),
      runCli(["generate", ...args, "--hires-upscaler", "tiny-esrgan-4x", ...common, "-o", join(dir, "none.png")], {
        env: own,
      }),
    ]);
    expect(JSON.parse(info.stdout).raw).toMatch(/Hires upscaler: tiny-esrgan-4x/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/unknown hires upscaler "tiny-esrgan-4x": use one of "Latent", .*"Lanczos"/);
  });

  it("hires options without --hires, and bad sizes, exit 2 with one line naming the flag", async () => {
    const [a, b] = await Promise.all([
      runCli(["generate", "x", "--hires-steps", "3", "-o", join(dir, "x.png")], { env }),
      runCli(["generate", "x", "--seed-resize-from", "64by64", "-o", join(dir, "y.png")], { env }),
    ]);
    expect(a.code).toBe(2);
    expect(a.stderr.trim()).toMatch(/--hires-steps needs --hires SCALE/);
    expect(b.code).toBe(2);
    expect(b.stderr.trim()).toMatch(/--seed-resize-from "64by64" is not a size/);
  });
});
