import { InputError } from "../errors.js";
import { CANNY } from "./canny.js";
import { INVERT } from "./invert.js";
import { NONE } from "./none.js";
import type { Preprocessor } from "./preprocessor.js";
import { SCRIBBLE } from "./scribble.js";

/** Every preprocessor, in the order module lists show them. */
export const PREPROCESSORS: readonly Preprocessor[] = [NONE, SCRIBBLE, CANNY, INVERT];

/** The preprocessor a module name (or one of A1111's aliases) names, or an InputError listing the valid names. */
export function findPreprocessor(module: string): Preprocessor {
  const key = module.trim().toLowerCase();
  const found = PREPROCESSORS.find((p) => p.name === key || p.aliases?.includes(key));
  if (!found)
    throw new InputError(
      `ControlNet module ${JSON.stringify(module)} is unknown: use one of ${PREPROCESSORS.map((p) => p.name).join(", ")}`,
    );
  return found;
}
