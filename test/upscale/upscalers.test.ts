/**
 * The upscaler registry: A1111's names (None, Lanczos, Nearest, then each model file by name) from A1111's and
 * ComfyUI's folders, and the learned upscalers run on the tiny RRDBNet fixtures with A1111's sizing: the model
 * applied until the image covers the target, then resized to exactly the size asked for.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InputError, UnsafePickleError } from "../../src/errors.js";
import { UpscalerRegistry } from "../../src/upscale/upscalers.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";
import { mulberry32 } from "../helpers/seeded-random.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";
import { pickle, str, torchZip } from "../weights/torch-writer.js";

afterAll(removeTempDirs);

const fixtures = join(OWN_FIXTURES, "rrdbnet");
const env = { DIFFUSE_HOME: "/nonexistent-diffuse-home" };

function a1111(): string {
  const root = tempDir("a1111");
  mkdirSync(join(root, "models", "Stable-diffusion"), { recursive: true });
  mkdirSync(join(root, "models", "ESRGAN"), { recursive: true });
  mkdirSync(join(root, "models", "RealESRGAN"), { recursive: true });
  copyFileSync(join(fixtures, "x4-old.pth"), join(root, "models", "ESRGAN", "tiny-esrgan-4x.pth"));
  copyFileSync(join(fixtures, "x2-new.pth"), join(root, "models", "RealESRGAN", "tiny-realesrgan-x2.pth"));
  writeFileSync(join(root, "models", "ESRGAN", "evil.pth"), torchZip(pickle(`cos\nsystem\n(${str("id")}tR`)));
  writeFileSync(join(root, "models", "ESRGAN", "notes.txt"), "not a model");
  return root;
}

function image(w: number, h: number): Uint8Array {
  const r = mulberry32(w * 31 + h);
  return Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256));
}

describe("upscalers by name", () => {
  it("lists None, Lanczos, Nearest, then A1111's ESRGAN and RealESRGAN model files by file name", async () => {
    const reg = new UpscalerRegistry({ modelsDirs: [a1111()], searchDefaults: false, env });
    expect(reg.list().map((e) => e.name)).toEqual([
      "None",
      "Lanczos",
      "Nearest",
      "evil",
      "tiny-esrgan-4x",
      "tiny-realesrgan-x2",
    ]);
    const x2 = reg.list().find((e) => e.name === "tiny-realesrgan-x2")!;
    expect(x2).toMatchObject({ modelName: "RealESRGAN", scale: 2 });
    expect(x2.modelPath).toMatch(/models\/RealESRGAN\/tiny-realesrgan-x2\.pth$/);
    expect(reg.list()[1]).toEqual({ name: "Lanczos", modelName: null, modelPath: null, scale: 4 });
    await reg.close();
  });

  it("finds ComfyUI's models/upscale_models, and safetensors files", async () => {
    const root = tempDir("comfy");
    mkdirSync(join(root, "models", "checkpoints"), { recursive: true });
    mkdirSync(join(root, "models", "upscale_models"), { recursive: true });
    copyFileSync(join(fixtures, "x4-new.safetensors"), join(root, "models", "upscale_models", "4x-tiny.safetensors"));
    const reg = new UpscalerRegistry({ modelsDirs: [root], searchDefaults: false, env });
    expect(reg.list().map((e) => e.name)).toEqual(["None", "Lanczos", "Nearest", "4x-tiny"]);
    const out = await reg.get("4x-tiny").upscale(image(10, 6), 10, 6, 40, 24);
    expect(out.length).toBe(40 * 24 * 3);
    await reg.close();
  });

  it("an unknown name is refused listing the available ones and where model files go", () => {
    const reg = new UpscalerRegistry({ modelsDirs: [a1111()], searchDefaults: false, env });
    expect(() => reg.get("4x-UltraSharp")).toThrow(InputError);
    expect(() => reg.get("4x-UltraSharp")).toThrow(
      /no upscaler named "4x-UltraSharp"; available: None, Lanczos, Nearest, evil, .*models\/ESRGAN/,
    );
  });

  it("a malicious model file is refused by name when used, naming the global", async () => {
    const reg = new UpscalerRegistry({ modelsDirs: [a1111()], searchDefaults: false, env });
    const error = await reg
      .get("evil")
      .upscale(image(8, 8), 8, 8, 32, 32)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsafePickleError);
    expect((error as UnsafePickleError).offending).toBe("os.system");
    await reg.close();
  });

  it("A1111's sizing: a x4 model asked for x2 runs once and is resized; asked for x8 it runs twice", async () => {
    const reg = new UpscalerRegistry({ modelsDirs: [a1111()], searchDefaults: false, env }, { threads: 1 });
    const u = reg.get("tiny-esrgan-4x");
    expect(u.path).toMatch(/tiny-esrgan-4x\.pth$/);
    const rgb = image(9, 7);
    const x4 = await u.upscale(rgb, 9, 7, 36, 28);
    const x2 = await u.upscale(rgb, 9, 7, 18, 14);
    const x8 = await u.upscale(rgb, 9, 7, 72, 56);
    expect([x4.length, x2.length, x8.length]).toEqual([36 * 28 * 3, 18 * 14 * 3, 72 * 56 * 3]);
    const lanczos = await reg.get("Lanczos").upscale(x4, 36, 28, 18, 14);
    expect(Buffer.from(x2).equals(Buffer.from(lanczos))).toBe(true); // x2 = the x4 result halved with Lanczos
    const again = await u.upscale(x4, 36, 28, 144, 112);
    expect(Buffer.from(x8).equals(Buffer.from(await reg.get("Lanczos").upscale(again, 144, 112, 72, 56)))).toBe(true);
    await reg.close();
  });

  it("tiles (A1111's 192/8, here 16/4 on a 40x30 image) stay close to the whole image: seams are blended", async () => {
    const whole = new UpscalerRegistry(
      { modelsDirs: [a1111()], searchDefaults: false, env },
      { threads: 1, tiles: { tile: 0, overlap: 0 } },
    );
    const tiled = new UpscalerRegistry(
      { modelsDirs: [a1111()], searchDefaults: false, env },
      { threads: 1, tiles: { tile: 16, overlap: 4 } },
    );
    const rgb = image(40, 30);
    const a = await whole.get("tiny-esrgan-4x").upscale(rgb, 40, 30, 160, 120);
    const b = await tiled.get("tiny-esrgan-4x").upscale(rgb, 40, 30, 160, 120);
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
    expect(sum / a.length).toBeLessThan(4); // mean absolute difference in 0..255 levels
    await whole.close();
    await tiled.close();
  });

  it("the pixel-unshuffling x2 model takes odd sizes (padded at the edges, cropped after)", async () => {
    const reg = new UpscalerRegistry({ modelsDirs: [a1111()], searchDefaults: false, env }, { threads: 1 });
    const out = await reg.get("tiny-realesrgan-x2").upscale(image(11, 7), 11, 7, 22, 14);
    expect(out.length).toBe(22 * 14 * 3);
    await reg.close();
  });

  it("Nearest repeats pixels; sizes past 8192 are refused", async () => {
    const reg = new UpscalerRegistry({ searchDefaults: false, env });
    const out = await reg.get("Nearest").upscale(Uint8Array.from([10, 20, 30, 40, 50, 60]), 2, 1, 4, 2);
    expect([...out]).toEqual([
      10, 20, 30, 10, 20, 30, 40, 50, 60, 40, 50, 60, 10, 20, 30, 10, 20, 30, 40, 50, 60, 40, 50, 60,
    ]);
    await expect(reg.get("Lanczos").upscale(image(4, 4), 4, 4, 9000, 16)).rejects.toThrow(/larger than the 8192x8192/);
  });
});
