import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ldmStoredTensors, storedTensorData } from "../../src/weights/ldm-keymap-reverse.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import type { WeightSource } from "../../src/weights/weight-source.js";
import { encodeSafetensors, f32Bytes } from "../weights/safetensors-writer.js";
import { ref } from "./fixtures.js";

/**
 * sd15-tiny's VAE with its decoder's output conv scaled by `scale` (the decoded image, before clamping, is scaled
 * with it), written as a standalone VAE three ways: a single file in diffusers' names, one in the original layout (as
 * vae-ft-mse-840000 ships) and a diffusers folder. Paths under `dir`, named by `names`.
 */
export function writeScaledVaes(
  dir: string,
  scale: number,
  names = { diffusers: "scaled-diffusers.safetensors", original: "vae-ft-scaled.safetensors", folder: "scaled-folder" },
): { diffusers: string; original: string; folder: string } {
  const files = {
    diffusers: join(dir, names.diffusers),
    original: join(dir, names.original),
    folder: join(dir, names.folder),
  };
  const src = SafetensorsFile.open(ref("models/sd15-tiny/vae/diffusion_pytorch_model.safetensors"));
  const data = new Map<string, Float32Array>();
  for (const k of src.keys()) {
    const v = src.float32(k);
    data.set(k, k.startsWith("decoder.conv_out.") ? v.map((x) => x * scale) : v);
  }
  const shapes = new Map(src.keys().map((k) => [k, src.info(k).shape] as const));
  src.close();
  writeFileSync(
    files.diffusers,
    encodeSafetensors(
      [...data].map(([name, d]) => ({ name, dtype: "F32" as const, shape: shapes.get(name)!, data: f32Bytes(d) })),
    ),
  );
  const source: WeightSource = {
    origin: "scaled",
    keys: () => [...data.keys()],
    has: (k) => data.has(k),
    shape: (k) => shapes.get(k)!,
    dtype: () => "F32",
    float32: (k) => data.get(k)!,
  };
  const stored = ldmStoredTensors({ component: "vae", prefix: "", layout: "vae" }, shapes);
  if (!stored.some((t) => t.stored.startsWith("decoder.up.0."))) throw new Error("not the original layout");
  writeFileSync(
    files.original,
    encodeSafetensors(
      stored.map((t) => ({
        name: t.stored,
        dtype: "F32" as const,
        shape: t.shape,
        data: f32Bytes(storedTensorData(t, source)),
      })),
    ),
  );
  mkdirSync(files.folder);
  copyFileSync(files.diffusers, join(files.folder, "diffusion_pytorch_model.safetensors"));
  copyFileSync(ref("models/sd15-tiny/vae/config.json"), join(files.folder, "config.json"));
  return files;
}
