import { checkShapes } from "../weights/detect.js";
import {
  openControlNetFiles,
  type ControlNetCheckpoint,
  type ControlNetOpenOptions,
} from "../weights/controlnet-checkpoint.js";
import { controlNetParamShapes } from "./param-shapes.js";

/**
 * Opens a ControlNet (diffusers folder or single file, weights/controlnet-checkpoint.ts) and checks that it holds
 * exactly the tensors its architecture has, from the headers alone: a mismatch is a CheckpointError naming the key.
 */
export function openControlNet(path: string, opts: ControlNetOpenOptions = {}): ControlNetCheckpoint {
  const cn = openControlNetFiles(path, opts);
  try {
    checkShapes(cn.weights, controlNetParamShapes(cn.config), "ControlNet", cn.mismatchHint);
    return cn;
  } catch (e) {
    cn.close();
    throw e;
  }
}
