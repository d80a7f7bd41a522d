/**
 * Parameters that callers build piece by piece (spread in from helpers) reach the pipeline under the library's names:
 * the compiler's excess-property check does not look inside spreads, so a helper that kept an old name would be
 * dropped silently. Each case goes through resolveParams, which is what the pipeline runs on.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { controlUnits } from "../../src/cli/control-options.js";
import { parseInfotext, requestFromInfotext } from "../../src/index.js";
import { resolveParams } from "../../src/pipeline/params.js";

const defaults = { size: 64, randomSeed: () => 1n };

describe("parameters built by helpers", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-built-params-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("--control-start and --control-end reach the ControlNet unit as its guidance start and end", () => {
    const image = join(dir, "control.png");
    writeFileSync(image, "not read here");
    const controlnet = controlUnits({
      control: [image],
      controlModel: [join(dir, "controlnet.safetensors")],
      controlType: [],
      controlScale: [],
      controlStart: ["0.25"],
      controlEnd: ["0.5"],
      controlConfig: [],
    });
    const [unit] = resolveParams({ prompt: "x", controlnet }, defaults).controlnet ?? [];
    expect(unit).toMatchObject({ guidanceStart: 0.25, guidanceEnd: 0.5 });
  });

  it("an infotext's hires schedule type reaches the hires fix's second pass", () => {
    const request = requestFromInfotext(
      parseInfotext(
        "a red circle\nSteps: 4, Sampler: Euler, Schedule type: Automatic, CFG scale: 7, Seed: 3, Size: 64x64, " +
          "Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent, Hires sampler: Euler, " +
          "Hires schedule type: Karras",
      ),
    );
    const hires = resolveParams(request, defaults).hires;
    expect(hires?.sampler).toBe("Euler");
    expect(hires?.schedule).toBe("karras");
  });
});
