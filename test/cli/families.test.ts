import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../helpers/cli.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { maxPixelDiff, PROMPT } from "../helpers/pipeline-parity.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-cli-families-"));
const env = { DIFFUSE_CACHE: cacheDir };

/** Runs `diffuse generate PROMPT ARGS --json` into a temp folder: the parsed result and the image's pixels. */
async function generate(
  args: string[],
): Promise<{ result: { images: string[]; info: string; parameters: Record<string, unknown> }; pixels: Buffer }> {
  const out = join(mkdtempSync(join(tmpdir(), "diffuse-cli-")), "out.png");
  const r = await runCli(["generate", PROMPT, ...args, "-o", out, "--json", "--no-safety-check"], { env });
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  const result = JSON.parse(r.stdout);
  return { result, pixels: await sharp(result.images[0]).raw().toBuffer() };
}

const image = (fixture: string) => golden(fixture).get("image_uint8");
/** The sd2v-tiny golden's run (its README): DDIM, 4 steps, cfg 7.5, seed 31. */
const SD2V_RUN = ["--sampler", "DDIM", "--steps", "4", "--cfg", "7.5", "--seed", "31"];

describe.skipIf(!HAVE_REFERENCE)("diffuse generate with every family's tiny model", () => {
  it("SD2 v-prediction (single file, folder as --config, --prediction v): the reference image", async () => {
    const { pixels } = await generate([
      "--model",
      ref("models/sd2v-tiny.ldm.safetensors"),
      "--config",
      ref("models/sd2v-tiny"),
      "--prediction",
      "v",
      ...SD2V_RUN,
    ]);
    expect(maxPixelDiff(pixels, image("goldens/sd2v-tiny/txt2img.safetensors"))).toBeLessThanOrEqual(1);
  });

  it("--prediction epsilon overrides the folder's v-prediction; a bad value is refused before loading", async () => {
    // The refusal (before loading: no model, no cache) runs beside the generation.
    const [{ pixels }, bad] = await Promise.all([
      generate(["--model", ref("models/sd2v-tiny"), "--prediction", "epsilon", ...SD2V_RUN]),
      runCli(
        [
          "generate",
          PROMPT,
          "--model",
          ref("models/sd2v-tiny"),
          "--prediction",
          "velocity",
          "-o",
          join(tmpdir(), "never.png"),
        ],
        { env },
      ),
    ]);
    expect(maxPixelDiff(pixels, image("goldens/sd2v-tiny/txt2img.safetensors"))).toBeGreaterThan(1);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--prediction "velocity" is not a prediction type: use v .* or epsilon/);
  });

  it("SDXL (single file, folder as --config): the reference image", async () => {
    const { pixels, result } = await generate([
      "--model",
      ref("models/sdxl-tiny.ldm.safetensors"),
      "--config",
      ref("models/sdxl-tiny"),
      "--sampler",
      "Euler",
      "--steps",
      "4",
      "--cfg",
      "5",
      "--seed",
      "31",
    ]);
    expect(maxPixelDiff(pixels, image("goldens/sdxl-tiny/txt2img.safetensors"))).toBeLessThanOrEqual(1);
    expect(result.info).not.toMatch(/Refiner/);
  });

  it("SDXL with --refiner (its own weights as a single file) --refiner-switch-at 0.5: the model's image, and the refiner in the infotext; --prompt-2 changes the image", async () => {
    const common = [
      "--model",
      ref("models/sdxl-tiny"),
      "--sampler",
      "Euler",
      "--steps",
      "4",
      "--cfg",
      "5",
      "--seed",
      "31",
    ];
    const refined = await generate([
      ...common,
      "--refiner",
      ref("models/sdxl-tiny.ldm.safetensors"),
      "--refiner-config",
      ref("models/sdxl-tiny"),
      "--refiner-switch-at",
      "0.5",
    ]);
    expect(maxPixelDiff(refined.pixels, image("goldens/sdxl-tiny/txt2img.safetensors"))).toBeLessThanOrEqual(1);
    expect(refined.result.info).toMatch(
      /, Model: sdxl-tiny, .*Refiner: sdxl-tiny\.ldm \[[0-9a-f]{10}\], Refiner switch at: 0\.5/,
    );
    const second = await generate([...common, "--prompt-2", "a red cube", "--negative-2", "blurry"]);
    expect(maxPixelDiff(second.pixels, image("goldens/sdxl-tiny/txt2img.safetensors"))).toBeGreaterThan(1);
    expect(second.result.parameters).toMatchObject({ prompt2: "a red cube", negativePrompt2: "blurry" });
  });

  it("LCM with the model's defaults (LCM sampler, 4 steps) at --cfg 8: the reference image", async () => {
    const { pixels, result } = await generate(["--model", ref("models/lcm-tiny"), "--cfg", "8", "--seed", "42"]);
    expect(maxPixelDiff(pixels, image("goldens/lcm-tiny/txt2img.safetensors"))).toBeLessThanOrEqual(1);
    expect(result.info).toMatch(/Steps: 4, Sampler: LCM, CFG scale: 8, Seed: 42,/);
  });

  it("--tokenizer-2 is the second encoder's tokenizer; --refiner-switch-at needs --refiner", async () => {
    const missing = join(tmpdir(), "diffuse-no-such-tokenizer-2");
    // Two refusals, side by side.
    const [r, s] = await Promise.all([
      runCli(
        [
          "generate",
          PROMPT,
          "--model",
          ref("models/sdxl-tiny.ldm.safetensors"),
          "--config",
          ref("models/sdxl-tiny"),
          "--tokenizer-2",
          missing,
          "-o",
          join(tmpdir(), "never.png"),
        ],
        { env },
      ),
      runCli(
        [
          "generate",
          PROMPT,
          "--model",
          ref("models/sdxl-tiny"),
          "--refiner-switch-at",
          "0.5",
          "-o",
          join(tmpdir(), "never.png"),
        ],
        { env },
      ),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`tokenizer path ${missing} does not exist`);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/--refiner-switch-at needs --refiner/);
  });
});
