import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { judge } from "../../scripts/shapes/judge.js";
import { scribbleCase } from "../../scripts/shapes/scribble-sketch.js";
import { controlModelPath } from "../../src/cli/control-options.js";
import { decodeImage, encodePng } from "../../src/image/codec.js";
import { runCli } from "../helpers/cli.js";

const ROOT = resolve(import.meta.dirname, "../..");
const neverResolves = async (name: string): Promise<string> => {
  throw new Error(`no model "${name}" in the store`);
};

describe("--control-model with the embedded ControlNets", () => {
  it("tiny-shapes-scribble names the scribble ControlNet shipped beside the embedded model, without asking the store", async () => {
    const path = await controlModelPath("tiny-shapes-scribble", neverResolves);
    expect(resolve(path)).toBe(join(ROOT, "models/tiny-shapes-scribble"));
    expect(existsSync(join(path, "config.json")) && existsSync(join(path, "diffusion_pytorch_model.safetensors"))).toBe(
      true,
    );
  });

  it("a path still wins over an embedded name, and other names still go to the store", async () => {
    expect(await controlModelPath(join(ROOT, "models/tiny-shapes-scribble"), neverResolves)).toBe(
      join(ROOT, "models/tiny-shapes-scribble"),
    );
    await expect(controlModelPath("tiny-shapes-canny", neverResolves)).rejects.toThrow(
      /--control-model tiny-shapes-canny: not found \(no model "tiny-shapes-canny" in the store\)/,
    );
  });
});

describe("diffuse generate with the embedded model and --control-model tiny-shapes-scribble", () => {
  it("draws the prompted shape where the pen drawing put it, and names the ControlNet in the infotext", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-embedded-cn-"));
    // A drawing no training drawing is (an evaluation case), of a shape at the left; the prompt does not say where.
    const drawing = scribbleCase(0);
    expect(drawing.expected.position).toBe("left");
    const sketch = join(dir, "drawing.png");
    writeFileSync(sketch, await encodePng(drawing.image));
    const out = join(dir, "out.png");
    const r = await runCli(
      [
        "generate",
        drawing.prompt,
        "--control",
        sketch,
        "--control-type",
        "scribble",
        "--control-model",
        "tiny-shapes-scribble",
        "--seed",
        "0",
        "-o",
        out,
      ],
      {
        env: { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-embedded-cn-cache-")) },
      },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const j = judge(await decodeImage(out));
    expect(j.object?.position).toBe("left");
    expect(j.object?.shape).toBe(drawing.expected.shape);
    const info = await runCli(["info", out, "--json"]);
    expect(JSON.parse(info.stdout).parameters.extra["ControlNet 0"]).toMatch(
      /^Module: scribble, Model: tiny-shapes-scribble \[[0-9a-f]{8}\], Weight: 1\.0,/,
    );
  });
});
