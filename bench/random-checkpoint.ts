import { closeSync, existsSync, openSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { PipelineConfig } from "../src/configs/pipeline.js";
import { clipTextParamShapes, unetParamShapes, vaeParamShapes, type ParamShapes } from "../src/models/param-shapes.js";
import type { Checkpoint } from "../src/weights/checkpoint.js";
import { fileWeightSource } from "../src/weights/file-source.js";
import { f32ToF16 } from "../src/weights/half.js";
import { SafetensorsFile } from "../src/weights/safetensors.js";
import { randomWeights } from "./random-weights.js";

/**
 * A full-size checkpoint with random fp16 weights, as most published single files are stored: one safetensors file
 * per network under diffusers names in `dir`, written once (about 2.1 GB for SD1.5) and opened as a diffusers
 * checkpoint, so a benchmark goes the way a user's checkpoint does: hashed, read, converted, built and cached.
 */
/** The networks of an SD1/SD2 checkpoint (one text encoder). */
type Component = "unet" | "vae" | "textEncoder";

const FILES: Record<Component, string> = { unet: "unet.safetensors", vae: "vae.safetensors", textEncoder: "text_encoder.safetensors" };

export function randomCheckpoint(dir: string, config: PipelineConfig): Checkpoint {
  const shapes: Record<Component, ParamShapes> = {
    unet: unetParamShapes(config.unet),
    vae: vaeParamShapes(config.vae),
    textEncoder: clipTextParamShapes(config.textEncoder),
  };
  for (const c of Object.keys(FILES) as Component[]) if (!existsSync(join(dir, FILES[c]))) writeFp16(join(dir, FILES[c]), shapes[c]);
  const files = Object.fromEntries((Object.keys(FILES) as Component[]).map((c) => [c, SafetensorsFile.open(join(dir, FILES[c]))])) as Record<Component, SafetensorsFile>;
  const info = (c: Component) => ({ parameters: [...shapes[c].values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0), tensors: shapes[c].size, dtype: "F16" as const });
  return {
    path: dir,
    layout: "diffusers",
    config,
    inpainting: false,
    unet: fileWeightSource(files.unet),
    vae: fileWeightSource(files.vae),
    textEncoder: fileWeightSource(files.textEncoder),
    textEncoderFolders: ["text_encoder"],
    components: { unet: info("unet"), vae: info("vae"), textEncoder: info("textEncoder") },
    files: Object.values(FILES).map((f) => join(dir, f)),
    mismatchHint: "random weights written for this config's shapes",
    close: () => Object.values(files).forEach((f) => f.close()),
  };
}

/** Bytes of the checkpoint's weight files. */
export function checkpointBytes(dir: string): number {
  return Object.values(FILES).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** A safetensors file of `shapes` with seeded random fp16 values (randomWeights). */
export function writeFp16(path: string, shapes: ParamShapes): void {
  const source = randomWeights(shapes);
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F16", shape: [...shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(path, "w");
  try {
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    let at = 0;
    const put = (b: Uint8Array) => {
      for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done, at + done);
      at += b.length;
    };
    put(prefix);
    put(Buffer.from(json));
    for (const name of shapes.keys()) {
      const half = f32ToF16(source.float32(name));
      put(new Uint8Array(half.buffer, half.byteOffset, half.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}
