import type { Checkpoint } from "../weights/checkpoint.js";
import type { Networks } from "./networks.js";
import type { ModelIdentity } from "./output-metadata.js";
import type { TextualInversions } from "./textual-inversions.js";
import type { Conditioner } from "./unet-condition.js";

/**
 * A second checkpoint that takes over the denoising for the last part of the schedule: A1111's refiner (and
 * diffusers' "ensemble of expert denoisers", denoising_end / denoising_start). The same latents, scheduler state
 * and noise stream carry on; only the UNet and its conditioning change.
 */
export interface Refiner {
  checkpoint: Checkpoint;
  networks: Networks;
  /** Its own conditioning of the same prompts (the SDXL refiner's: bigG alone, aesthetic score ids). */
  conditioner: Conditioner;
  identity: ModelIdentity;
  /** The embeddings its encoder reads (SDXL files' clip_g vectors for the SDXL refiner). */
  embeddings?: TextualInversions;
}

/** A1111's default "Switch at" (its UI's; diffusers' examples hand over at 0.8 as well). */
export const DEFAULT_REFINER_SWITCH_AT = 0.8;

/**
 * The index of the first model call the refiner makes, or undefined when the base runs them all. A1111's
 * apply_refiner switches before the first call whose completed ratio (trainSteps - 1 - t) / trainSteps reaches
 * `switchAt`, t being the call's training timestep (the nearest to its sigma, for sigma samplers: rounded here);
 * with 1000 training steps and 0.8 that is t <= 199, the same cut as diffusers' denoising_end = 0.8.
 */
export function refinerStart(timesteps: readonly number[], switchAt: number, trainSteps: number): number | undefined {
  const i = timesteps.findIndex((t) => (trainSteps - 1 - Math.round(t)) / trainSteps >= switchAt);
  return i < 0 ? undefined : i;
}

/** The infotext fields A1111 writes when the refiner ran: `Refiner: name [hash], Refiner switch at: 0.8`. */
export function refinerInfotext(refiner: ModelIdentity, switchAt: number): Record<string, string> {
  return { Refiner: `${refiner.name} [${refiner.hash}]`, "Refiner switch at": String(switchAt) };
}
