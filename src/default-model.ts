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
    throw new InputError(
      `the embedded default model is missing (${EMBEDDED}); pass --model path/to/a-stable-diffusion-1.x.safetensors or a diffusers folder`,
    );
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

/**
 * ControlNets trained by the project for the embedded model and shipped beside it (models/<name>/, diffusers
 * ControlNet folders), by the short name `--control-model` and requests take for them.
 */
const EMBEDDED_CONTROLNETS: Readonly<Record<string, string>> = {
  "tiny-shapes-scribble": fileURLToPath(new URL("../models/tiny-shapes-scribble", import.meta.url)),
};

/** The folder of an embedded ControlNet's short name (tiny-shapes-scribble), if the name is one and it is installed. */
export function embeddedControlNetPath(name: string): string | undefined {
  const path = Object.hasOwn(EMBEDDED_CONTROLNETS, name) ? EMBEDDED_CONTROLNETS[name] : undefined;
  return path !== undefined && existsSync(path) ? path : undefined;
}
