import type { Command } from "commander";
import { type Checkpoint, checkpointSha256, type ComponentInfo, openCheckpoint, shortHash } from "../index.js";

/** What `diffuse inspect --json` prints. */
export interface InspectReport {
  /** sd1, sd2, sdxl or sdxl-refiner. */
  family: string;
  prediction: string;
  /** The size the model was trained at (UNet sample size times the VAE's scale factor), e.g. 512, 768, 1024. */
  default_size: number;
  layout: string;
  inpainting: boolean;
  /** LCM UNets take a guidance embedding of this width (time_cond_proj_dim); absent otherwise. */
  lcm_guidance_embedding?: number;
  /** Keyed by diffusers' folder names: unet, vae, text_encoder and/or text_encoder_2. */
  components: Record<string, { params: number; dtype: string }>;
  hash: string;
  sha256: string;
}

export async function inspect(path: string, opts: { config?: string } = {}): Promise<InspectReport> {
  const ckpt = openCheckpoint(path, { configDir: opts.config });
  try {
    const sha256 = await checkpointSha256(ckpt);
    const { config } = ckpt;
    const cond = config.unet.timeCondProjDim;
    return {
      family: config.family,
      prediction: config.predictionType,
      default_size: config.unet.sampleSize * 2 ** (config.vae.blockOutChannels.length - 1),
      layout: ckpt.layout,
      inpainting: ckpt.inpainting,
      ...(cond !== null ? { lcm_guidance_embedding: cond } : {}),
      components: componentsByFolder(ckpt),
      hash: shortHash(sha256),
      sha256,
    };
  } finally {
    ckpt.close();
  }
}

function componentsByFolder(ckpt: Checkpoint): InspectReport["components"] {
  const entry = (c: ComponentInfo) => ({ params: c.parameters, dtype: c.dtype });
  const out: InspectReport["components"] = { unet: entry(ckpt.components.unet), vae: entry(ckpt.components.vae) };
  const texts = [ckpt.components.textEncoder, ckpt.components.textEncoder2];
  ckpt.textEncoderFolders.forEach((folder, i) => {
    if (texts[i]) out[folder] = entry(texts[i]!);
  });
  return out;
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description(
      "show a checkpoint's family, prediction type, default size, per-component parameters and dtype, and its hash",
    )
    .argument("<path>", "a single-file .safetensors checkpoint or a diffusers folder")
    .option(
      "--config <dir>",
      "a diffusers folder whose config.json files describe a single-file checkpoint of non-standard size",
    )
    .option("--json", "print one JSON object")
    .action(async (path: string, opts: { config?: string; json?: boolean }) => {
      const r = await inspect(path, opts);
      if (opts.json) {
        process.stdout.write(JSON.stringify(r) + "\n");
        return;
      }
      const fmt = (n: number) => n.toLocaleString("en-US");
      const variant = [r.inpainting ? "inpainting" : "", r.lcm_guidance_embedding !== undefined ? "LCM" : ""]
        .filter(Boolean)
        .join(", ");
      const names: Record<string, string> = {
        unet: "unet",
        vae: "vae",
        text_encoder: "text encoder",
        text_encoder_2: "text encoder 2",
      };
      process.stdout.write(
        [
          `${path}`,
          `  family         ${r.family}${variant ? ` (${variant})` : ""}, ${r.prediction} prediction, ${r.default_size} px, ${r.layout} layout`,
          ...Object.entries(r.components).map(
            ([k, c]) => `  ${(names[k] ?? k).padEnd(14)} ${fmt(c.params)} parameters, ${c.dtype}`,
          ),
          `  hash           ${r.hash}  (sha256 ${r.sha256})`,
        ].join("\n") + "\n",
      );
    });
}
