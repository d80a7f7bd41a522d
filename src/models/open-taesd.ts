import { checkShapes } from "../weights/detect.js";
import { openTaesdFiles, type TaesdCheckpoint } from "../weights/taesd-checkpoint.js";
import { taesdParamShapes } from "./param-shapes.js";

/** Opens a TAESD (weights/taesd-checkpoint.ts) and checks its tensors against the architecture, from the headers. */
export function openTaesd(path: string): TaesdCheckpoint {
  const t = openTaesdFiles(path);
  try {
    checkShapes(
      t.weights,
      taesdParamShapes(t.config, { encoder: t.hasEncoder }),
      "TAESD",
      `${t.path} is not a TAESD of the published layout (${t.layout})`,
    );
    return t;
  } catch (e) {
    t.close();
    throw e;
  }
}
