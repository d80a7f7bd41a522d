import type { Command } from "commander";
import { openCheckpoint } from "../models/open-checkpoint.js";
import { checkpointSha256 } from "../weights/checkpoint-hash.js";
import { shortHash } from "../weights/hash.js";

/** What `diffuse inspect --json` prints. */
export interface InspectReport {
  family: string;
  prediction: string;
  layout: string;
  inpainting: boolean;
  components: Record<"unet" | "vae" | "text_encoder", { params: number; dtype: string }>;
  hash: string;
  sha256: string;
}

export async function inspect(path: string, opts: { config?: string } = {}): Promise<InspectReport> {
  const ckpt = openCheckpoint(path, { configDir: opts.config });
  try {
    const sha256 = await checkpointSha256(ckpt);
    const c = ckpt.components;
    return {
      family: ckpt.config.family,
      prediction: ckpt.config.predictionType,
      layout: ckpt.layout,
      inpainting: ckpt.inpainting,
      components: {
        unet: { params: c.unet.parameters, dtype: c.unet.dtype },
        vae: { params: c.vae.parameters, dtype: c.vae.dtype },
        text_encoder: { params: c.textEncoder.parameters, dtype: c.textEncoder.dtype },
      },
      hash: shortHash(sha256),
      sha256,
    };
  } finally {
    ckpt.close();
  }
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a checkpoint's family, prediction type, per-component parameters and dtype, and its hash")
    .argument("<path>", "a single-file .safetensors checkpoint or a diffusers folder")
    .option("--config <dir>", "a diffusers folder whose config.json files describe a single-file checkpoint of non-standard size")
    .option("--json", "print one JSON object")
    .action(async (path: string, opts: { config?: string; json?: boolean }) => {
      const r = await inspect(path, opts);
      if (opts.json) {
        process.stdout.write(JSON.stringify(r) + "\n");
        return;
      }
      const fmt = (n: number) => n.toLocaleString("en-US");
      process.stdout.write(
        [
          `${path}`,
          `  family       ${r.family}${r.inpainting ? " (inpainting)" : ""}, ${r.prediction} prediction, ${r.layout} layout`,
          `  unet         ${fmt(r.components.unet.params)} parameters, ${r.components.unet.dtype}`,
          `  vae          ${fmt(r.components.vae.params)} parameters, ${r.components.vae.dtype}`,
          `  text encoder ${fmt(r.components.text_encoder.params)} parameters, ${r.components.text_encoder.dtype}`,
          `  hash         ${r.hash}  (sha256 ${r.sha256})`,
        ].join("\n") + "\n",
      );
    });
}
