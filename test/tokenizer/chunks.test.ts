import { beforeAll, describe, expect, it } from "vitest";
import { encodePrompt } from "../../src/tokenizer/chunks.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

/**
 * Expectations follow A1111's documented long-prompt behaviour: 75 prompt tokens per chunk, each chunk
 * [start, tokens..., end, padding...] of length 77 with weight 1 outside the prompt tokens, BREAK
 * closing the chunk, and a full chunk whose last comma is at most 20 tokens back ending after that comma.
 */
describe.skipIf(!HAVE_REFERENCE)("A1111-style prompt chunks", () => {
  let clip: ClipTokenizer;
  let bang: ClipTokenizer;
  let BOS: number, EOS: number, CAT: number, DOG: number, COMMA: number, RED: number, CAR: number, A: number;

  const repeat = (id: number, n: number): number[] => new Array<number>(n).fill(id);
  /** The 77 ids the chunk holding `tokens` must have. */
  const chunk = (tokens: number[], pad = EOS): number[] => [BOS, ...tokens, EOS, ...repeat(pad, 75 - tokens.length)];
  const words = (word: string, n: number): string => new Array<string>(n).fill(word).join(" ");

  beforeAll(async () => {
    clip = await ClipTokenizer.load(ref("goldens/tokenizer/clip-bpe-49408"));
    bang = await ClipTokenizer.load(ref("goldens/tokenizer/clip-bpe-49408"), { padToken: "!" });
    const single = (word: string): number => {
      const ids = clip.encodeText(word);
      expect(ids, `${word} should be one token`).toHaveLength(1);
      return ids[0]!;
    };
    [BOS, EOS] = [clip.bosId, clip.eosId];
    [CAT, DOG, COMMA, RED, CAR, A] = ["cat", "dog", ",", "red", "car", "a"].map(single) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
  });

  it("gives an empty prompt one chunk of start, end and padding", () => {
    const { ids, weights, tokenCount } = encodePrompt(clip, "");
    expect(ids).toEqual([chunk([])]);
    expect(weights).toEqual([repeat(1, 77)]);
    expect(tokenCount).toBe(0);
  });

  it("pads with the tokenizer's pad token after the end token", () => {
    expect(encodePrompt(bang, "").ids).toEqual([chunk([], 0)]);
    expect(encodePrompt(bang, "a red car").ids).toEqual([chunk([A, RED, CAR], 0)]);
  });

  it("splits an 80-token prompt into 75 + 5 tokens", () => {
    const { ids, weights, tokenCount } = encodePrompt(clip, words("cat", 80));
    expect(ids).toEqual([chunk(repeat(CAT, 75)), chunk(repeat(CAT, 5))]);
    expect(weights).toEqual([repeat(1, 77), repeat(1, 77)]);
    expect(tokenCount).toBe(80);
  });

  it("keeps exactly 75 tokens in one chunk", () => {
    expect(encodePrompt(clip, words("cat", 75)).ids).toEqual([chunk(repeat(CAT, 75))]);
  });

  it("carries each token's weight, with weight 1 on start, end and padding", () => {
    const { ids, weights } = encodePrompt(clip, "a (red:1.5) [car]");
    expect(ids).toEqual([chunk([A, RED, CAR])]);
    expect(weights).toEqual([[1, 1, 1.5, 1 / 1.1, ...repeat(1, 73)]]);
  });

  it("keeps weights per token across a chunk boundary", () => {
    const { weights } = encodePrompt(clip, `${words("cat", 74)} (dog dog:1.2)`);
    expect(weights[0]!.slice(74, 77)).toEqual([1, 1.2, 1]);
    expect(weights[1]!.slice(0, 3)).toEqual([1, 1.2, 1]);
  });

  it("starts a new chunk at BREAK", () => {
    const { ids, weights } = encodePrompt(clip, "a red car BREAK a dog");
    expect(ids).toEqual([chunk([A, RED, CAR]), chunk([A, DOG])]);
    expect(weights).toEqual([repeat(1, 77), repeat(1, 77)]);
  });

  it("gives a leading BREAK an empty first chunk, as A1111 does", () => {
    expect(encodePrompt(clip, "BREAK a dog").ids).toEqual([chunk([]), chunk([A, DOG])]);
  });

  it("adds no empty chunk for a trailing BREAK", () => {
    expect(encodePrompt(clip, "a dog BREAK").ids).toEqual([chunk([A, DOG])]);
  });

  it("moves the words after a comma 5 tokens back into the next chunk", () => {
    // 70 cats, a comma at index 70, then 10 dogs: the 5th dog finds the chunk full.
    const { ids } = encodePrompt(clip, `${words("cat", 70)}, ${words("dog", 10)}`);
    expect(ids).toEqual([chunk([...repeat(CAT, 70), COMMA]), chunk(repeat(DOG, 10))]);
  });

  it("moves the boundary to a comma exactly 20 tokens back", () => {
    const { ids } = encodePrompt(clip, `${words("cat", 55)}, ${words("dog", 30)}`);
    expect(ids).toEqual([chunk([...repeat(CAT, 55), COMMA]), chunk(repeat(DOG, 30))]);
  });

  it("cuts at 75 when the last comma is 21 tokens back", () => {
    const { ids } = encodePrompt(clip, `${words("cat", 54)}, ${words("dog", 30)}`);
    expect(ids).toEqual([chunk([...repeat(CAT, 54), COMMA, ...repeat(DOG, 20)]), chunk(repeat(DOG, 10))]);
  });

  it("moves weights together with their tokens", () => {
    const { weights } = encodePrompt(clip, `${words("cat", 70)}, (${words("dog", 10)}:1.3)`);
    expect(weights[0]).toEqual(repeat(1, 77));
    expect(weights[1]).toEqual([1, ...repeat(1.3, 10), ...repeat(1, 66)]);
  });

  it("cuts at 75 when comma backtracking is turned off", () => {
    const { ids } = encodePrompt(clip, `${words("cat", 70)}, ${words("dog", 10)}`, { commaBacktrack: 0 });
    expect(ids).toEqual([chunk([...repeat(CAT, 70), COMMA, ...repeat(DOG, 4)]), chunk(repeat(DOG, 6))]);
  });

  it("tokenizes differently weighted segments separately", () => {
    // "(cat)dog" is two words to CLIP: the weight change separates them.
    expect(encodePrompt(clip, "(cat)dog").ids).toEqual([chunk([CAT, DOG])]);
    expect(encodePrompt(clip, "(cat)dog").weights[0]!.slice(0, 4)).toEqual([1, 1.1, 1, 1]);
  });
});
