import { statSync } from "node:fs";
import type { Command } from "commander";
import {
  type Checkpoint,
  checkpointSha256,
  type ComponentInfo,
  openCheckpoint,
  shortHash,
  surveySingleFile,
} from "../index.js";

/** What `diffuse inspect --json` prints. */
export interface InspectReport {
  /** sd1, sd2, sdxl or sdxl-refiner. */
  family: string;
  /** Absent for a single file of non-standard sizes inspected without --config (see needs_config). */
  prediction?: string;
  /**
   * The size the model was trained at (UNet sample size times the VAE's scale factor), e.g. 512, 768, 1024; absent
   * where prediction is.
   */
  default_size?: number;
  /** What the report lacks because only a config folder says it, and how to give one (--config). */
  needs_config?: string;
  layout: string;
  inpainting: boolean;
  /** LCM UNets take a guidance embedding of this width (time_cond_proj_dim); absent otherwise. */
  lcm_guidance_embedding?: number;
  /** Keyed by diffusers' folder names: unet, vae, text_encoder and/or text_encoder_2. */
  components: Record<string, { params: number; dtype: string }>;
  hash: string;
  sha256: string;
}

/** Reported for a single file whose sizes are not its family's published ones, inspected without --config. */
const NEEDS_CONFIG =
  "prediction type and default size: a checkpoint of non-standard sizes does not say them (nor its attention " +
  "heads and norm groups, which generating needs); pass --config <a diffusers folder with this model's config.json " +
  "files> to read them";

export async function inspect(path: string, opts: { config?: string } = {}): Promise<InspectReport> {
  // Parameters, dtypes, family and hash are in the weights; only building the networks needs a config folder.
  if (opts.config === undefined && isFile(path)) {
    const survey = surveySingleFile(path);
    if (!survey.standardSizes) {
      const sha256 = await checkpointSha256({ layout: "single-file", path, files: [path] });
      return {
        family: survey.family,
        needs_config: NEEDS_CONFIG,
        layout: "single-file",
        inpainting: survey.inpainting,
        components: componentsByFolder(survey),
        hash: shortHash(sha256),
        sha256,
      };
    }
  }
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

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false; // a missing path: openCheckpoint names it
  }
}

function componentsByFolder(ckpt: Pick<Checkpoint, "components" | "textEncoderFolders">): InspectReport["components"] {
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
    .argument("<path>", "a single-file .safetensors or .ckpt checkpoint, or a diffusers folder")
    .option(
      "--config <dir>",
      "a diffusers folder whose config.json files describe a single-file checkpoint of non-standard size " +
        "(without one, such a file's prediction type and default size are not reported)",
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
          `  family         ${r.family}${variant ? ` (${variant})` : ""}, ${
            r.prediction !== undefined ? `${r.prediction} prediction, ${r.default_size} px, ` : ""
          }${r.layout} layout`,
          ...Object.entries(r.components).map(
            ([k, c]) => `  ${(names[k] ?? k).padEnd(14)} ${fmt(c.params)} parameters, ${c.dtype}`,
          ),
          `  hash           ${r.hash}  (sha256 ${r.sha256})`,
          ...(r.needs_config ? [`  needs --config ${r.needs_config}`] : []),
        ].join("\n") + "\n",
      );
    });
}
