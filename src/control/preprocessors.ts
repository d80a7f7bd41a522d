import { InputError } from "../errors.js";
import { NONE } from "./none.js";
import type { Preprocessor } from "./preprocessor.js";

/** Every preprocessor, in the order module lists show them. */
export const PREPROCESSORS: readonly Preprocessor[] = [NONE];

/** The preprocessor a module name (or one of A1111's aliases) names, or an InputError listing the valid names. */
export function findPreprocessor(module: string): Preprocessor {
  const key = module.trim().toLowerCase();
  const found = PREPROCESSORS.find((p) => p.name === key || p.aliases?.includes(key));
  if (!found) throw new InputError(`ControlNet module ${JSON.stringify(module)} is unknown: use one of ${PREPROCESSORS.map((p) => p.name).join(", ")}`);
  return found;
}
