import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../helpers/cli.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";

const env = { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-taesd-cache-")) };
const base = [
  "generate",
  "a photo of an astronaut riding a horse on mars",
  "--model",
  ref("models/sd15-tiny"),
  "--negative",
  "",
  "--sampler",
  "pndm",
  "--steps",
  "4",
  "--cfg",
  "7.5",
  "--seed",
  "31",
  "-W",
  "64",
  "-H",
  "64",
];

async function maxDiff(png: string, want: Float32Array): Promise<number> {
  const got = await sharp(png).raw().toBuffer();
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
  return max;
}

describe.skipIf(!HAVE_REFERENCE)("diffuse generate --vae (TAESD) and --preview", () => {
  afterAll(() => removeTempDirs());
  const taesdImage = () => golden("goldens/taesd-tiny/taesd.safetensors").get("decode/image_uint8");

  it("--vae with madebyollin's TAESD files decodes the final image as diffusers' pipeline with vae=taesd does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-taesd-"));
    const r = await runCli([...base, "--vae", ref("models/taesd-tiny-madebyollin"), "-o", join(dir, "out.png")], {
      env,
    });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(await maxDiff(join(dir, "out.png"), taesdImage())).toBeLessThanOrEqual(1);
  });

  it("--preview with --preview-vae leaves the last step's TAESD image (the final latents' decode) while -o gets the VAE's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-taesd-"));
    const r = await runCli(
      [
        ...base,
        "--preview",
        join(dir, "forming.png"),
        "--preview-vae",
        ref("models/taesd-tiny"),
        "-o",
        join(dir, "out.png"),
      ],
      { env },
    );
    expect(r.code).toBe(0);
    expect(await maxDiff(join(dir, "forming.png"), taesdImage())).toBeLessThanOrEqual(1);
    expect(
      await maxDiff(join(dir, "out.png"), golden("goldens/sd15-tiny/txt2img.safetensors").get("image_uint8")),
    ).toBeLessThanOrEqual(1);
  });

  it("--preview shows only what the safety checker lets through: a checker that flags everything (policy block) leaves no preview file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-taesd-"));
    const r = await runCli(
      [
        ...base,
        "--preview",
        join(dir, "forming.png"),
        "--preview-vae",
        ref("models/taesd-tiny"),
        "--safety-checker",
        flagsEverything(tempDir("cli-taesd-checker")),
        "-o",
        join(dir, "out.png"),
      ],
      { env },
    );
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, "forming.png"))).toBe(false);
  });
});
