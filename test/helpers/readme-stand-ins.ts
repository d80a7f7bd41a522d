import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import type { FakeRepo } from "./fake-hub.js";
import { copyModelFolder } from "./fixture-copies.js";
import { ref } from "./fixtures.js";
import { hubRepos, SD15_REPO } from "./hub-fixtures.js";
import { writeScaledVaes } from "./scaled-vae.js";
import { sketchPng } from "./sketch.js";
import { tinyRefinerFolder, tinyRefinerSingleFile } from "./tiny-refiner.js";

/**
 * The files the README's examples name, as a user has them beside the commands, made of the reference fixtures'
 * tiny models: each under the README's name, in the layout the real file has (a single file in the original layout
 * where the README names a .safetensors checkpoint, a diffusers folder where it names a folder). The tiny models
 * are of non-standard sizes, which a single file cannot describe: `configs` gives the config folder each single
 * file needs (a real checkpoint of standard size needs none).
 */
export interface ReadmeStandIns {
  /** The folder the commands run in. */
  readonly cwd: string;
  /**
   * A single file's README name -> the option that names it, and the config folder its tiny stand-in needs there
   * (with the flag that passes it).
   */
  readonly configs: ReadonlyMap<string, { use: string; flag: string; dir: string }>;
}

/** Steps the stand-in models recommend (generation_config.json), so that a command that names none runs quickly. */
export const STAND_IN_STEPS = 2;

/** The Hub repository `pull sd-1.5` fetches, served by a FakeHub: sd15-tiny with its recommended steps. */
export function readmeHubRepos(): FakeRepo[] {
  const repos = hubRepos();
  const sd15 = repos.find((r) => r.id === SD15_REPO)!;
  return [
    ...repos,
    {
      ...sd15,
      id: "stable-diffusion-v1-5/stable-diffusion-v1-5",
      files: { ...sd15.files, "generation_config.json": Buffer.from(generationConfig()) },
    },
  ];
}

/**
 * Lays the stand-ins out in `cwd`, and in `home` (DIFFUSE_HOME) what the README takes from there by default: the
 * LoRAs `--lora NAME` finds and the embeddings a prompt names.
 */
export async function writeReadmeStandIns(cwd: string, home: string): Promise<ReadmeStandIns> {
  const models = ref("models");
  const link = (target: string, name: string) => symlinkSync(target, join(cwd, name));
  // A diffusers folder of SD 1.x, and SD 1.5's single file (sd15-tiny's weights in the original layout).
  link(folderWithSteps("sd15-tiny"), "sd15");
  link(join(models, "sd15-tiny.ldm.safetensors"), "v1-5-pruned-emaonly.safetensors");
  // The config folder of the single file leaves the tokenizer out: a single file's comes from the store.
  const sd15Config = copyModelFolder("sd15-tiny", ["model_index.json", "scheduler", "unet", "vae", "text_encoder"]);
  writeFileSync(join(sd15Config, "generation_config.json"), generationConfig());
  // SDXL base as a single file with its diffusers folder (the README passes it), and a refiner as a single file.
  link(join(models, "sdxl-tiny.ldm.safetensors"), "sd_xl_base_1.0.safetensors");
  link(folderWithSteps("sdxl-tiny"), "sdxl-base");
  const refinerConfig = tinyRefinerFolder();
  tinyRefinerSingleFile(refinerConfig, join(cwd, "sd_xl_refiner_1.0.safetensors"));
  // ControlNet 1.1 as lllyasviel publishes it: one file in the original layout.
  link(join(models, "controlnet-tiny.ldm.safetensors"), "control_v11p_sd15_scribble.safetensors");
  // A VAE in the original layout, as vae-ft-mse-840000-ema-pruned ships (sd15-tiny's own, unscaled).
  const vaes = join(cwd, ".vae-stand-in");
  mkdirSync(vaes);
  const { original } = writeScaledVaes(vaes, 1, {
    diffusers: "diffusers.safetensors",
    original: "vae-ft-mse-840000-ema-pruned.safetensors",
    folder: "folder",
  });
  link(original, "vae-ft-mse-840000-ema-pruned.safetensors");
  // A kohya LoRA in a folder of the user's, and in the store's folders an A1111 embedding and a PEFT LoRA (as
  // latent-consistency's lcm-lora-sdv1-5 is).
  mkdirSync(join(cwd, "loras"));
  link(join(models, "sd15-tiny-adapters/lora-kohya.safetensors"), "loras/watercolor.safetensors");
  mkdirSync(join(home, "embeddings"), { recursive: true });
  symlinkSync(
    join(models, "sd15-tiny-adapters/ti-a1111.safetensors"),
    join(home, "embeddings/EasyNegative.safetensors"),
  );
  mkdirSync(join(home, "loras"), { recursive: true });
  symlinkSync(
    join(models, "sd15-tiny-adapters/lora-diffusers.safetensors"),
    join(home, "loras/lcm-lora-sdv1-5.safetensors"),
  );
  // The user's pictures, at the models' 64 px: a sketch, a photo, and a mask that repaints the photo's centre.
  writeFileSync(join(cwd, "sketch.png"), await sketchPng());
  await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 120, b: 40 } } })
    .composite([
      {
        input: await sharp(await sketchPng())
          .resize(32, 32)
          .png()
          .toBuffer(),
        left: 8,
        top: 24,
      },
    ])
    .png()
    .toFile(join(cwd, "photo.png"));
  await sharp({ create: { width: 64, height: 64, channels: 3, background: "black" } })
    .composite([
      {
        input: { create: { width: 32, height: 32, channels: 3, background: "white" } },
        left: 16,
        top: 16,
      },
    ])
    .png()
    .toFile(join(cwd, "mask.png"));
  return {
    cwd,
    configs: new Map([
      ["v1-5-pruned-emaonly.safetensors", { use: "--model", flag: "--config", dir: sd15Config }],
      ["sd_xl_refiner_1.0.safetensors", { use: "--refiner", flag: "--refiner-config", dir: refinerConfig }],
      [
        "control_v11p_sd15_scribble.safetensors",
        { use: "--control-model", flag: "--control-config", dir: join(models, "controlnet-tiny") },
      ],
    ]),
  };
}

function generationConfig(): string {
  return JSON.stringify({ num_inference_steps: STAND_IN_STEPS });
}

/** A copy of a tiny model's diffusers folder that recommends few steps. */
function folderWithSteps(model: string): string {
  const dir = copyModelFolder(model);
  writeFileSync(join(dir, "generation_config.json"), generationConfig());
  return dir;
}
