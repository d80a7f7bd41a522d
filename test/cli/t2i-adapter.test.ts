import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../helpers/cli.js";
import { goldenAt, HAVE_REFERENCE, OWN_FIXTURES, ref } from "../helpers/fixtures.js";

const DIR = join(OWN_FIXTURES, "t2i-adapter");

describe.skipIf(!HAVE_REFERENCE)("diffuse generate --control-model with a T2I-Adapter", () => {
  it("reproduces the reference adapter run within 1/255 and writes the unit's infotext as A1111's extension does", async () => {
    const gold = goldenAt(join(DIR, "txt2img-sd15-tiny-104x72.safetensors"));
    const m = gold.metadata();
    const out = join(mkdtempSync(join(tmpdir(), "diffuse-cli-t2i-")), "out.png");
    const r = await runCli(
      [
        "generate",
        m.prompt!,
        "--model",
        ref("models/sd15-tiny"),
        "--sampler",
        m.sampler!,
        "--steps",
        m.steps!,
        "--cfg",
        m.cfg_scale!,
        "--seed",
        m.seed!,
        "-W",
        m.width!,
        "-H",
        m.height!,
        "--control",
        join(DIR, m.control_image!),
        "--control-model",
        join(DIR, "sd15-tiny-adapter.pth.safetensors"),
        "--control-scale",
        m.adapter_scale!,
        "--control-start",
        m.guidance_start!,
        "--control-end",
        m.guidance_end!,
        "-o",
        out,
      ],
      { env: { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-t2i-cache-")) } },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const got = await sharp(out).raw().toBuffer();
    const want = gold.get("image_uint8");
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
    expect(max).toBeLessThanOrEqual(1);
    const info = await runCli(["info", out, "--json"]);
    expect(JSON.parse(info.stdout).parameters.extra["ControlNet 0"]).toMatch(
      /^Module: none, Model: sd15-tiny-adapter\.pth \[[0-9a-f]{8}\], Weight: 0\.8, Resize Mode: Crop and Resize, Guidance Start: 0\.1, Guidance End: 0\.7, Pixel Perfect: False, Control Mode: Balanced$/,
    );
  });
});
