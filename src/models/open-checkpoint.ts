import { CheckpointError } from "../errors.js";
import { checkShapes } from "../weights/detect.js";
import { openCheckpointFiles, type Checkpoint, type OpenOptions } from "../weights/checkpoint.js";
import { clipTextParamShapes, unetParamShapes, vaeParamShapes } from "./param-shapes.js";

/**
 * Opens a Stable Diffusion checkpoint (a single `.safetensors` file or a diffusers folder) and checks that it holds
 * exactly the tensors its architecture has, names and shapes, from the headers alone: a mismatch is a
 * CheckpointError naming the key now, rather than a wrong image or a builder crash later.
 */
export function openCheckpoint(path: string, opts: OpenOptions = {}): Checkpoint {
  const ckpt = openCheckpointFiles(path, opts);
  try {
    verifyCheckpoint(ckpt);
    return ckpt;
  } catch (e) {
    ckpt.close();
    throw e;
  }
}

/** Each component against the parameters its builder declares for the checkpoint's config. */
export function verifyCheckpoint(ckpt: Checkpoint): void {
  const { config, mismatchHint } = ckpt;
  checkShapes(ckpt.unet, unetParamShapes(config.unet), "UNet", mismatchHint);
  checkShapes(ckpt.vae, vaeParamShapes(config.vae), "VAE", mismatchHint);
  checkShapes(ckpt.textEncoder, clipTextParamShapes(config.textEncoder), "text encoder", mismatchHint);
  if (Boolean(ckpt.textEncoder2) !== Boolean(config.textEncoder2)) {
    throw new CheckpointError(
      `${ckpt.path}: ${config.textEncoder2 ? "no weights for the second text encoder the config describes" : "a second text encoder the config does not describe"}; ${mismatchHint}`,
    );
  }
  if (ckpt.textEncoder2 && config.textEncoder2)
    checkShapes(ckpt.textEncoder2, clipTextParamShapes(config.textEncoder2), "second text encoder", mismatchHint);
}
