import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { heldOutCases } from "../../scripts/shapes/held-out.js";
import { sampleScene } from "../../scripts/shapes/scene.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { BYTE_SYMBOLS } from "../../src/tokenizer/bytes-to-unicode.js";

/** The BPE vocabulary the trainer learned from the captions, read by the project's CLIP tokenizer. */

const TOKENIZER = resolve(import.meta.dirname, "../../models/tiny-shapes/tokenizer");

describe.skipIf(!existsSync(join(TOKENIZER, "vocab.json")))("tiny-shapes tokenizer (learned from the captions)", () => {
  const captions = [
    ...Array.from({ length: 300 }, (_, seed) => sampleScene(seed).caption),
    ...heldOutCases(100).map((c) => c.prompt),
  ];

  it("has CLIP's layout: byte symbols, the same with </w>, learned merges, then the two special tokens", () => {
    const vocab = JSON.parse(readFileSync(join(TOKENIZER, "vocab.json"), "utf8")) as Record<string, number>;
    const byId = Object.entries(vocab)
      .sort((a, b) => a[1] - b[1])
      .map(([t]) => t);
    expect(byId.slice(0, 256)).toEqual(BYTE_SYMBOLS);
    expect(byId.slice(256, 512)).toEqual(BYTE_SYMBOLS.map((s) => `${s}</w>`));
    expect(byId.slice(-2)).toEqual(["<|startoftext|>", "<|endoftext|>"]);
    expect(byId.map((_, i) => i)).toEqual(Object.values(vocab).sort((a, b) => a - b));
    const merges = readFileSync(join(TOKENIZER, "merges.txt"), "utf8").trimEnd().split("\n");
    expect(merges[0]).toMatch(/^#version/);
    expect(merges.length - 1).toBe(byId.length - 512 - 2);
  });

  it("round-trips captions: decode(encode(caption)) gives the caption back", async () => {
    const tok = await ClipTokenizer.load(TOKENIZER);
    // CLIP decodes every word end as a space, so punctuation comes back detached: "top , blue".
    for (const c of captions) expect(tok.decode(tok.encode(c)).replace(/ ,/g, ",")).toBe(c);
  });

  it("spells every word of the world as one token, starts with <|startoftext|> and pads with <|endoftext|>", async () => {
    const tok = await ClipTokenizer.load(TOKENIZER);
    for (const c of captions) {
      const words = c.match(/[a-z]+|[^\sa-z]+/g)!;
      expect(tok.tokenize(c)).toEqual(words.map((w) => `${w}</w>`));
      const ids = tok.encode(c);
      expect(ids).toHaveLength(77);
      expect(ids[0]).toBe(tok.bosId);
      expect(ids[words.length + 1]).toBe(tok.eosId);
      expect(ids.slice(words.length + 2).every((id) => id === tok.eosId)).toBe(true);
    }
    expect(tok.padId).toBe(tok.eosId);
  });
});
