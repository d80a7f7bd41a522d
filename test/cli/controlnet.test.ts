import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../helpers/cli.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-cli-cn-cache-"));
const env = { DIFFUSE_CACHE: cacheDir };
const PROMPT = "a photo of an astronaut riding a horse on mars";
const CONTROL = ref("goldens/controlnet-tiny/control_scribble.png");

async function maxDiff(png: string, fixture: string): Promise<number> {
  const got = await sharp(png).raw().toBuffer();
  const want = golden(`goldens/controlnet-tiny/${fixture}.safetensors`).get("image_uint8");
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
  return max;
}

const base = [
  "generate",
  PROMPT,
  "--model",
  ref("models/sd15-tiny"),
  "--negative",
  "blurry, low quality",
  "--sampler",
  "pndm",
  "--steps",
  "8",
  "--cfg",
  "7.5",
  "--seed",
  "42",
  "-W",
  "64",
  "-H",
  "64",
];

describe.skipIf(!HAVE_REFERENCE)("diffuse generate --control", () => {
  it("reproduces diffusers' ControlNet pipeline (scale 0.8) within 1/255, and writes the unit's infotext as A1111's extension does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-cn-"));
    const out = join(dir, "out.png");
    const r = await runCli(
      [
        ...base,
        "--control",
        CONTROL,
        "--control-model",
        ref("models/controlnet-tiny"),
        "--control-scale",
        "0.8",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(await maxDiff(out, "txt2img")).toBeLessThanOrEqual(1);
    const info = await runCli(["info", out, "--json"]);
    expect(JSON.parse(info.stdout).parameters.extra["ControlNet 0"]).toMatch(
      /^Module: none, Model: controlnet-tiny \[[0-9a-f]{8}\], Weight: 0\.8, Resize Mode: Crop and Resize, Guidance Start: 0\.0, Guidance End: 1\.0, Pixel Perfect: False, Control Mode: Balanced$/,
    );
  });

  it("guidance end 0.5 with the single-file ControlNet and its --control-config; a dark-on-white sketch through --control-type scribble gives the same map", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-cn-"));
    // The user's side of the same drawing: black strokes on white paper.
    const sketch = join(dir, "sketch.png");
    await sharp(CONTROL).negate({ alpha: false }).png().toFile(sketch);
    const out = join(dir, "out.png");
    const r = await runCli(
      [
        ...base,
        "--control",
        sketch,
        "--control-type",
        "scribble",
        "--control-model",
        ref("models/controlnet-tiny.ldm.safetensors"),
        "--control-config",
        ref("models/controlnet-tiny"),
        "--control-scale",
        "0.8",
        "--control-end",
        "0.5",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(await maxDiff(out, "txt2img_guidance_end_0.5")).toBeLessThanOrEqual(1);
  });

  it("refuses flags that do not pair up, naming the flag", async () => {
    const cases: [string[], RegExp][] = [
      [["--control-scale", "0.5"], /--control-scale needs --control/],
      [["--control", CONTROL], /--control needs --control-model/],
      [
        [
          "--control",
          CONTROL,
          "--control",
          CONTROL,
          "--control-model",
          ref("models/controlnet-tiny"),
          "--control-end",
          "0.5",
          "--control-end",
          "0.6",
          "--control-end",
          "0.7",
        ],
        /--control-end is given 3 times for 2 --control images/,
      ],
      [
        ["--control", "nope.png", "--control-model", ref("models/controlnet-tiny")],
        /--control nope\.png: file not found/,
      ],
      [
        ["--control", CONTROL, "--control-model", ref("models/controlnet-tiny"), "--control-type", "sobelish"],
        /module "sobelish" is unknown: use one of none, scribble, canny, invert/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runCli([...base, "--steps", "1", ...args, "-o", join(tmpdir(), "never.png")], { env });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
