import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile } from "../regular-file.js";

/**
 * Prompts that suit a model: `prompt_examples.json` beside its `generation_config.json`. A page's placeholder saying
 * "a lighthouse on a cliff at dusk, oil painting" misleads on a model that draws coloured shapes, or anime, or
 * only faces; the model's folder can say what it is good at. Keys:
 * - `prompts`: 1 to 20 example prompts, the first the most typical;
 * - `negative_prompt` (optional): a negative prompt that suits it.
 */
export interface PromptExamples {
  prompts: string[];
  negativePrompt?: string;
}

export const PROMPT_EXAMPLES_FILE = "prompt_examples.json";
const MAX_PROMPTS = 20;
const MAX_CHARS = 1000;

/** The first of `roots` that has the file decides; undefined when none has it. */
export function readPromptExamples(roots: readonly string[]): PromptExamples | undefined {
  const file = roots.map((r) => join(r, PROMPT_EXAMPLES_FILE)).find((f) => existsSync(f));
  if (!file) return undefined;
  const raw = readJsonFile(file, InputError, { hint: "fix it or delete it", maxBytes: MAX_SIDE_FILE_BYTES });
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new InputError(`${file}: expected an object {"prompts": [...], "negative_prompt": "..."}`);
  const { prompts, negative_prompt: negative } = raw as Record<string, unknown>;
  if (
    !Array.isArray(prompts) ||
    prompts.length === 0 ||
    prompts.length > MAX_PROMPTS ||
    !prompts.every((p) => typeof p === "string" && p.trim() !== "")
  )
    throw new InputError(
      `${file}: prompts must be a list of 1 to ${MAX_PROMPTS} non-empty strings, e.g. ["a red circle on the left"]`,
    );
  (prompts as string[]).forEach((p, i) => {
    if (p.length > MAX_CHARS)
      throw new InputError(`${file}: prompts[${i}] is ${p.length} characters: at most ${MAX_CHARS}; shorten it`);
  });
  if (negative !== undefined && typeof negative !== "string")
    throw new InputError(`${file}: negative_prompt must be a string, e.g. "blurry, low quality"`);
  return { prompts: prompts as string[], ...(negative ? { negativePrompt: negative } : {}) };
}
