import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parsePromptWeights, type PromptSegment } from "../../src/tokenizer/prompt-weighting.js";

const text = (t: string, weight = 1): PromptSegment => ({ kind: "text", text: t, weight });
const BREAK: PromptSegment = { kind: "break" };

/** Expected weights are written as A1111 computes them: one multiplication per closing bracket, innermost first. */
describe("A1111 attention syntax", () => {
  it("gives plain text weight 1", () => {
    expect(parsePromptWeights("normal text")).toEqual([text("normal text")]);
  });

  it("multiplies by 1.1 inside round brackets", () => {
    expect(parsePromptWeights("an (important) word")).toEqual([text("an "), text("important", 1.1), text(" word")]);
  });

  it("multiplies nested round brackets", () => {
    expect(parsePromptWeights("((word))")).toEqual([text("word", 1.1 * 1.1)]);
    expect(parsePromptWeights("((word))")[0]).toMatchObject({ weight: expect.closeTo(1.21, 12) });
  });

  it("uses an explicit weight instead of 1.1", () => {
    expect(parsePromptWeights("a (word:1.3) b")).toEqual([text("a "), text("word", 1.3), text(" b")]);
    expect(parsePromptWeights("(word: 0.5 )")).toEqual([text("word", 0.5)]);
    expect(parsePromptWeights("(word:-1)")).toEqual([text("word", -1)]);
  });

  it("divides by 1.1 inside square brackets", () => {
    expect(parsePromptWeights("[word]")).toEqual([text("word", 1 / 1.1)]);
    expect(parsePromptWeights("[[word]]")).toEqual([text("word", (1 / 1.1) * (1 / 1.1))]);
  });

  it("reads escaped brackets and backslashes literally", () => {
    expect(parsePromptWeights("\\(literal\\]")).toEqual([text("(literal]")]);
    expect(parsePromptWeights("\\[a\\) b")).toEqual([text("[a) b")]);
    expect(parsePromptWeights("back\\\\slash")).toEqual([text("back\\slash")]);
  });

  it("drops a lone backslash", () => {
    expect(parsePromptWeights("a\\b")).toEqual([text("ab")]);
  });

  it("weights everything after a bracket that is never closed", () => {
    expect(parsePromptWeights("(unbalanced")).toEqual([text("unbalanced", 1.1)]);
    expect(parsePromptWeights("a [b (c")).toEqual([text("a "), text("b ", 1 / 1.1), text("c", 1.1 * (1 / 1.1))]);
  });

  it("keeps a closing bracket with nothing open as text", () => {
    expect(parsePromptWeights("unbalanced)")).toEqual([text("unbalanced)")]);
    expect(parsePromptWeights("a] b")).toEqual([text("a] b")]);
    expect(parsePromptWeights("a:1.3) b")).toEqual([text("a:1.3) b")]);
    expect(parsePromptWeights("(a] b)")).toEqual([text("a] b", 1.1)]);
  });

  it("joins adjacent text of equal weight", () => {
    expect(parsePromptWeights("(unnecessary)(parens)")).toEqual([text("unnecessaryparens", 1.1)]);
    expect(parsePromptWeights("a: b")).toEqual([text("a: b")]);
  });

  it("matches the worked example in A1111's documentation", () => {
    expect(parsePromptWeights("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")).toEqual([
      text("a "),
      text("house", 1.5730000000000004),
      text(" ", 1.1),
      text("on", 1.0),
      text(" a ", 1.1),
      text("hill", 0.55),
      text(", sun, ", 1.1),
      text("sky", 1.4641000000000006),
      text(".", 1.1),
    ]);
  });

  it("splits at BREAK written as an upper-case word, eating the spaces around it", () => {
    expect(parsePromptWeights("a cat BREAK a dog")).toEqual([text("a cat"), BREAK, text("a dog")]);
    expect(parsePromptWeights("a cat,BREAK\na dog")).toEqual([text("a cat,"), BREAK, text("a dog")]);
    expect(parsePromptWeights("BREAK dog")).toEqual([text(""), BREAK, text("dog")]);
  });

  it("does not split at break in lower case or inside a word", () => {
    expect(parsePromptWeights("break BREAKFAST unBREAK éBREAK")).toEqual([text("break BREAKFAST unBREAK éBREAK")]);
  });

  it("keeps weights on both sides of a BREAK inside brackets", () => {
    expect(parsePromptWeights("(a BREAK b)")).toEqual([text("a", 1.1), BREAK, text("b", 1.1)]);
  });

  it("returns one empty segment for an empty prompt", () => {
    expect(parsePromptWeights("")).toEqual([text("")]);
    expect(parsePromptWeights("()")).toEqual([text("")]);
  });

  it("rejects a weight that is not a number with a message that shows the fix", () => {
    expect(() => parsePromptWeights("(a:1.2.3)")).toThrow(InputError);
    expect(() => parsePromptWeights("(a:.)")).toThrow(/\(words:1\.2\)/);
  });
});
