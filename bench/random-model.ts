import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { SD15 } from "../src/configs/pipeline.js";
import { clipTextParamShapes, unetParamShapes, vaeParamShapes, type ParamShapes } from "../src/models/param-shapes.js";
import { randomWeights } from "./random-weights.js";

/**
 * A diffusers folder of the full-size SD1.5 architecture with seeded random weights (fp32, about 4.3 GB), for
 * benchmarks that need a model the server can load like any other: speed does not depend on the values. The
 * small files (tokenizer, scheduler, model_index.json) and the config keys SD1.5 does not change come from
 * `template`, a diffusers folder of the same family (the tiny reference model); the sizes are SD1.5's published
 * ones, the same as the SD15 config the builders use.
 */
export function writeRandomSd15(dir: string, template: string): void {
  const config = (component: string, overrides: Record<string, unknown>) => {
    const base = JSON.parse(readFileSync(join(template, component, "config.json"), "utf8")) as Record<string, unknown>;
    mkdirSync(join(dir, component), { recursive: true });
    writeFileSync(join(dir, component, "config.json"), JSON.stringify({ ...base, ...overrides }, null, 2));
  };
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(template, "model_index.json"), join(dir, "model_index.json"));
  for (const component of ["scheduler", "tokenizer"]) {
    mkdirSync(join(dir, component), { recursive: true });
    for (const f of ["scheduler_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"]) {
      try {
        copyFileSync(join(template, component, f), join(dir, component, f));
      } catch {
        // Not every component has every file.
      }
    }
  }
  config("unet", {
    sample_size: 64,
    block_out_channels: [320, 640, 1280, 1280],
    down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    attention_head_dim: 8,
    cross_attention_dim: 768,
    norm_num_groups: 32,
    layers_per_block: 2,
  });
  config("vae", { block_out_channels: [128, 256, 512, 512], norm_num_groups: 32, sample_size: 512 });
  // The template's tokenizer gives ids below its own vocabulary size, all inside CLIP's 49408.
  config("text_encoder", { hidden_size: 768, intermediate_size: 3072, num_attention_heads: 12, num_hidden_layers: 12, projection_dim: 768, vocab_size: 49408 });
  writeRandomSafetensors(join(dir, "unet", "diffusion_pytorch_model.safetensors"), unetParamShapes(SD15.unet), 1);
  writeRandomSafetensors(join(dir, "vae", "diffusion_pytorch_model.safetensors"), vaeParamShapes(SD15.vae), 2);
  writeRandomSafetensors(join(dir, "text_encoder", "model.safetensors"), clipTextParamShapes(SD15.textEncoder), 3);
}

/** Streams one tensor at a time to disk: the UNet alone is 3.4 GB, more than one Buffer may hold. */
function writeRandomSafetensors(path: string, shapes: ParamShapes, seed: number): void {
  const weights = randomWeights(shapes, seed);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so tensors stay aligned.
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(path, "w");
  try {
    writeSync(fd, prefix);
    writeSync(fd, json);
    for (const name of shapes.keys()) {
      const data = weights.float32(name);
      writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}
