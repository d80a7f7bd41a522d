import { checkShapes } from "../weights/detect.js";
import { openT2IAdapterFiles, type T2IAdapterCheckpoint } from "../weights/t2i-adapter-checkpoint.js";
import { t2iAdapterParamShapes } from "./param-shapes.js";

/**
 * Opens a T2I-Adapter (diffusers folder or single file in either layout, weights/t2i-adapter-checkpoint.ts) and
 * checks that it holds exactly the tensors its architecture has, from the headers alone: a mismatch is a
 * CheckpointError naming the key.
 */
export function openT2IAdapter(path: string): T2IAdapterCheckpoint {
  const adapter = openT2IAdapterFiles(path);
  try {
    checkShapes(
      adapter.weights,
      t2iAdapterParamShapes(adapter.config),
      "T2I-Adapter",
      adapter.layout === "diffusers"
        ? `the weights in ${path} do not match its config.json`
        : "the file is incomplete or not a full T2I-Adapter",
    );
    return adapter;
  } catch (e) {
    adapter.close();
    throw e;
  }
}
