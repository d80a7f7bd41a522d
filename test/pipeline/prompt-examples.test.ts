import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { readPromptExamples } from "../../src/pipeline/prompt-examples.js";

/** A model folder's prompt_examples.json: prompts that suit the model, for a page's placeholders. */
describe("prompt_examples.json", () => {
  const dirs: string[] = [];
  const folder = (content?: string) => {
    const d = mkdtempSync(join(tmpdir(), "diffuse-prompts-"));
    dirs.push(d);
    if (content !== undefined) writeFileSync(join(d, "prompt_examples.json"), content);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("reads the prompts and the negative prompt, and is undefined for a folder without the file", () => {
    const d = folder(JSON.stringify({ prompts: ["a red circle", "a blue square"], negative_prompt: "green" }));
    expect(readPromptExamples([folder(), d])).toEqual({
      prompts: ["a red circle", "a blue square"],
      negativePrompt: "green",
    });
    expect(readPromptExamples([folder()])).toBeUndefined();
    expect(readPromptExamples([folder(JSON.stringify({ prompts: ["a cat"] }))])).toEqual({ prompts: ["a cat"] });
  });

  it("refuses a malformed file naming the file, the key and the shape it expects", () => {
    const cases: [unknown, RegExp][] = [
      [["a cat"], /prompt_examples\.json: expected an object \{"prompts": \[...\], "negative_prompt": "..."\}/],
      [{ prompts: "a cat" }, /prompt_examples\.json: prompts must be a list of 1 to 20 non-empty strings/],
      [{ prompts: [] }, /prompts must be a list of 1 to 20 non-empty strings/],
      [{ prompts: ["a cat", ""] }, /prompts must be a list of 1 to 20 non-empty strings/],
      [{ prompts: ["x".repeat(1001)] }, /prompts\[0\] is 1001 characters: at most 1000/],
      [{ prompts: ["a cat"], negative_prompt: 3 }, /negative_prompt must be a string/],
    ];
    for (const [content, message] of cases) {
      const d = folder(JSON.stringify(content));
      expect(() => readPromptExamples([d])).toThrow(InputError);
      expect(() => readPromptExamples([d])).toThrow(message);
    }
  });
});
