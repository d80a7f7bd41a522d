import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { resolveParams } from "../../src/pipeline/params.js";

const defaults = { size: 64, randomSeed: () => 1 };

describe("resolveParams", () => {
  it("refuses a NUL in the prompt or negative prompt before any compute: image metadata cannot hold one", () => {
    expect(() => resolveParams({ prompt: "a red\0 circle" }, defaults)).toThrow(InputError);
    expect(() => resolveParams({ prompt: "a red\0 circle" }, defaults)).toThrow(/the prompt contains a NUL character/);
    expect(() => resolveParams({ prompt: "a red circle", negative_prompt: "blurry\0" }, defaults)).toThrow(/the negative prompt contains a NUL character/);
    // Other control characters are kept for the tokenizer's clean-up, as the reference does.
    expect(resolveParams({ prompt: "a red\u0007 circle" }, defaults).prompt).toBe("a red\u0007 circle");
  });
});
