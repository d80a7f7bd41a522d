import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "./errors.js";

/**
 * The embedded default: a tiny model of the SD1 architecture trained by the project on a world of coloured
 * shapes (models/tiny-shapes/, shipped with the package), so `diffuse generate` works offline out of the box.
 * This file sits one level below the package root both in src/ and in dist/.
 */
const EMBEDDED = fileURLToPath(new URL("../models/tiny-shapes", import.meta.url));

export function defaultModelPath(): string {
  if (!existsSync(EMBEDDED)) {
    throw new InputError(`the embedded default model is missing (${EMBEDDED}); pass --model path/to/a-stable-diffusion-1.x.safetensors or a diffusers folder`);
  }
  return EMBEDDED;
}

/**
 * Where ControlNets made for the embedded model are shipped: beside it in the package's models/ folder (the tiny
 * shapes world's scribble ControlNet, models/tiny-shapes-scribble/), so a server of the embedded model serves them
 * without a --controlnet-dir.
 */
export function embeddedControlNetDir(): string {
  return dirname(EMBEDDED);
}

export function isDefaultModel(path: string): boolean {
  return resolve(path) === resolve(EMBEDDED);
}
