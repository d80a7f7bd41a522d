import type { Preprocessor } from "./preprocessor.js";

/** The image is already a control map (drawn or made elsewhere): used as it is. */
export const NONE: Preprocessor = {
  name: "none",
  run: (image) => image,
};
