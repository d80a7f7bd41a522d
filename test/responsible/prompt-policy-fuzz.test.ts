import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { MT19937 } from "../../src/random/mt19937.js";
import { PromptPolicy } from "../../src/responsible/prompt-policy.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { encodePrompt } from "../../src/tokenizer/chunks.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

/**
 * The policy against generated spellings of refused words: every spelling that the tokenizer turns into the
 * same token ids as the plain word must be refused, and spellings that give the model other words must pass
 * as the rule's semantics say (whole words). Each spelling is checked against the tokenizer itself, through
 * encodePrompt (the weighting parser and the CLIP tokenizer, as the pipeline encodes a prompt), so the
 * generator cannot claim an equivalence the model does not see.
 */

const RULES = [
  { term: "nude", reason: "no nudity" },
  { term: "gore", reason: "no gore" },
  { term: "nsfw", reason: "no explicit content" },
  { term: "naked", reason: "no nudity" },
  { term: "pokémon", reason: "no trademarked characters" },
  { term: "snuff film", reason: "no snuff" },
  { term: "art", reason: "a short term, to test word boundaries" },
];
const policy = PromptPolicy.parse(JSON.stringify(RULES), "fuzz-rules.json");
const SPELLINGS = 1000;
const CONTROLS = 300;

/** A seeded generator (the project's Mersenne Twister), so that every run draws the same spellings. */
function seeded(seed: number): () => number {
  const mt = new MT19937(seed);
  return () => mt.nextUint32() / 2 ** 32;
}

type Random = () => number;
const pick = <T>(r: Random, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
const chance = (r: Random, p: number): boolean => r() < p;

/** Characters the clean-up removes (controls, BOM, invisible format characters), written as they are. */
const REMOVED = [
  ..."\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000b\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f",
  "\ufeff",
  "\u206a",
  "\u206b",
  "\u206c",
  "\u206d",
  "\u206e",
  "\u206f",
  "\ufff9",
  "\ufffa",
  "\ufffb",
  "\ufffc",
  // As numeric references: HTML decodes these controls to nothing.
  "&#7;",
  "&#x1b;",
  "&#127;",
  "&#x7F;",
  "&#1;",
];
/**
 * Terminal escapes, which the clean-up removes; the bracket is escaped for the weighting parser, which would
 * otherwise read it as "[" (de-emphasis) and cut the word into segments.
 */
const ANSI = ["\u001b\\[31m", "\u001b\\[0m", "\u001b\\[1;32m", "\u001b\\[K", "\u001b\\[2J", "\u001b\\[38;5;196m"];
/** Attention markup that weights nothing; the parser joins the text on both sides again. */
const EMPTY_MARKUP = ["()", "[]", "(:1.2)", "(())", "\\"];
/** What the clean-up turns into one space, between words. */
const SEPARATORS = [
  " ",
  "  ",
  "\u00a0",
  "&nbsp;",
  "&#32;",
  "&#x20;",
  "\u3000",
  "\t",
  "\n",
  "\r\n",
  "\u2003",
  "&emsp;",
  "&amp;nbsp;",
  " \u0007 ",
];

const hex = (cp: number, r: Random): string => {
  const digits = cp.toString(16);
  return (chance(r, 0.3) ? "0" : "") + (chance(r, 0.5) ? digits.toUpperCase() : digits);
};

/** One letter in a random disguise that the clean-up folds back to it (case aside). */
function disguise(letter: string, r: Random): string {
  const ch = chance(r, 0.4) ? letter.toUpperCase() : letter;
  const cp = ch.codePointAt(0)!;
  const asciiLetter = /^[a-z]$/i.test(ch);
  const choice = Math.floor(r() * 8);
  switch (choice) {
    case 0:
      return ch;
    case 1: // decimal reference; the semicolon may go, since no digit follows
      return `&#${chance(r, 0.3) ? "0" : ""}${cp}${chance(r, 0.8) ? ";" : ""}`;
    case 2:
      return `&#${chance(r, 0.5) ? "x" : "X"}${hex(cp, r)};`;
    case 3: // double-escaped, as the clean-up unescapes twice
      return `${pick(r, ["&amp;", "&AMP;", "&amp"])}#${chance(r, 0.5) ? cp : `x${hex(cp, r)}`};`;
    case 4: // full-width forms fold to ASCII
      return asciiLetter ? String.fromCodePoint(cp + 0xfee0) : ch;
    case 5: // named references, where the letter has one
      if (ch === "é") return pick(r, ["&eacute;", "&eacute", "&amp;eacute;"]);
      if (ch === "É") return "&Eacute;";
      return ch;
    case 6: // decomposed accents compose again (NFC)
      return ch.normalize("NFD");
    default:
      return ch;
  }
}

/** Latin ligatures that the clean-up takes apart, applied to the word before the letters are disguised. */
const LIGATURES: ReadonlyArray<[string, string]> = [
  ["ffi", "\ufb03"],
  ["ffl", "\ufb04"],
  ["ff", "\ufb00"],
  ["fi", "\ufb01"],
  ["fl", "\ufb02"],
];

/** A spelling of `phrase` that the weighting parser and the clean-up read as the phrase itself. */
function spell(phrase: string, r: Random): string {
  const words = phrase.split(" ").map((word) => {
    let units: string[] = [];
    for (let i = 0; i < word.length; ) {
      const lig = chance(r, 0.5) ? LIGATURES.find(([plain]) => word.startsWith(plain, i)) : undefined;
      if (lig) {
        units.push(lig[1]);
        i += lig[0].length;
      } else {
        units.push(disguise(word[i]!, r));
        i += 1;
      }
    }
    // Markup inside a character reference is parsed away before the clean-up decodes it.
    units = units.map((u) =>
      u.startsWith("&") && u.length > 3 && chance(r, 0.15) ? u.slice(0, 2) + pick(r, ["()", "[]"]) + u.slice(2) : u,
    );
    // Between letters: removed characters, terminal escapes and empty markup, in any mix.
    let out = units[0]!;
    for (const unit of units.slice(1)) {
      if (chance(r, 0.25)) out += pick(r, REMOVED);
      if (chance(r, 0.1)) out += pick(r, ANSI);
      if (chance(r, 0.1)) out += pick(r, EMPTY_MARKUP);
      out += unit;
    }
    if (chance(r, 0.1)) out = pick(r, REMOVED) + out;
    // Both halves weighted alike are one segment again: (nu)(de), [nu][de].
    if (chance(r, 0.1) && word.length > 1) {
      const [open, close] = pick(r, [
        ["(", ")"],
        ["[", "]"],
        ["(", ":1.3)"],
      ] as const);
      const cut = 1 + Math.floor(r() * (word.length - 1));
      out = `${open}${[...units.slice(0, cut)].join("")}${close}${open}${units.slice(cut).join("")}${close}`;
    }
    return out;
  });
  let spelled = words[0]!;
  for (const w of words.slice(1)) spelled += pick(r, SEPARATORS) + w;
  // The whole phrase weighted: the model sees the same ids with another weight.
  if (chance(r, 0.15)) spelled = pick(r, [`(${spelled})`, `((${spelled}))`, `[${spelled}]`, `(${spelled}:1.4)`]);
  return spelled;
}

/**
 * Spellings that the tokenizer reads as other words: a character the clean-up keeps (zero-width space and
 * joiners, soft hyphen, a BOM decoded after the clean-up removed BOMs), whitespace, a reference escaped three
 * times, a full-width letter decoded after the width fix, a terminal escape whose bracket opens a weight, a
 * weight on one half only, or a longer word.
 */
const BREAKERS: ReadonlyArray<(word: string, at: number, r: Random) => string> = [
  (w, at, r) =>
    w.slice(0, at) +
    pick(r, ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "&shy;", "&#xfeff;", "&zwj;"]) +
    w.slice(at),
  (w, at, r) => w.slice(0, at) + pick(r, [" ", "\t", "\n", "&nbsp;", "\u3000", "&#32;", " BREAK "]) + w.slice(at),
  (w, at) => w.slice(0, at) + `&amp;amp;#${w.codePointAt(at)};` + w.slice(at + 1),
  (w, at) => w.slice(0, at) + `&#x${(w.codePointAt(at)! + 0xfee0).toString(16)};` + w.slice(at + 1),
  (w, at) => w.slice(0, at) + "\u001b[31m" + w.slice(at),
  (w, at, r) =>
    pick(r, [
      `(${w.slice(0, at)})${w.slice(at)}`,
      `${w.slice(0, at)}[${w.slice(at)}]`,
      `(${w.slice(0, at)}:1.2)${w.slice(at)}`,
    ]),
  (w, _at, r) => pick(r, [`${w}s`, `${w}y`, `de${w}`, `${w}ish`, `${w}ed`]),
];

interface Case {
  readonly rule: number;
  readonly word: string;
  readonly prompt: string;
}

/** The rule's word between ordinary words, joined by a random separator, as a prompt. */
function inPrompt(spelled: string, r: Random): string {
  return `a${pick(r, SEPARATORS)}${spelled}${pick(r, SEPARATORS)}person`;
}

function generateSpellings(count: number, seed: number): Case[] {
  const r = seeded(seed);
  return Array.from({ length: count }, () => {
    const rule = Math.floor(r() * RULES.length);
    const word = RULES[rule]!.term;
    return { rule: rule + 1, word, prompt: inPrompt(spell(word, r), r) };
  });
}

function generateControls(count: number, seed: number): Case[] {
  const r = seeded(seed);
  return Array.from({ length: count }, () => {
    const rule = Math.floor(r() * RULES.length);
    const phrase = RULES[rule]!.term;
    const words = phrase.split(" ");
    const w = Math.floor(r() * words.length);
    const word = words[w]!;
    words[w] = pick(r, BREAKERS)(word, 1 + Math.floor(r() * (word.length - 1)), r);
    return { rule: rule + 1, word: phrase, prompt: inPrompt(words.join(" "), r) };
  });
}

const TOKENIZERS: Array<[string, () => string]> = [
  [
    "the embedded model's tokenizer (models/tiny-shapes)",
    () => resolve(import.meta.dirname, "../../models/tiny-shapes/tokenizer"),
  ],
];
if (HAVE_REFERENCE)
  TOKENIZERS.push([
    "CLIP's 49408-token vocabulary, where these words are single tokens",
    () => ref("goldens/tokenizer/clip-bpe-49408"),
  ]);

describe.each(TOKENIZERS)("prompt policy fuzz, verified with %s", (_, folder) => {
  let tokenizer: ClipTokenizer;
  const ids = (prompt: string): string => JSON.stringify(encodePrompt(tokenizer, prompt).ids);
  const plainIds = (word: string): string => ids(`a ${word} person`);

  beforeAll(async () => {
    tokenizer = await ClipTokenizer.load(folder());
  });

  it(`refuses ${SPELLINGS} generated spellings that tokenize exactly like the refused word`, () => {
    const cases = generateSpellings(SPELLINGS, 12);
    for (const c of cases) {
      expect(ids(c.prompt), `${JSON.stringify(c.prompt)} should tokenize like "a ${c.word} person"`).toBe(
        plainIds(c.word),
      );
      expect(
        policy.checkPrompt(c.prompt)?.ruleNumber,
        `${JSON.stringify(c.prompt)} should be refused by rule ${c.rule}`,
      ).toBe(c.rule);
    }
    // The generator does disguise: most spellings differ from the word as written, and the policy reads past it.
    const disguised = cases.filter((c) => !c.prompt.toLowerCase().includes(c.word));
    expect(disguised.length).toBeGreaterThan(SPELLINGS * 0.9);
  });

  it(`lets ${CONTROLS} generated spellings pass that the tokenizer reads as other words`, () => {
    for (const c of generateControls(CONTROLS, 34)) {
      expect(ids(c.prompt), `${JSON.stringify(c.prompt)} should not tokenize like "a ${c.word} person"`).not.toBe(
        plainIds(c.word),
      );
      expect(policy.checkPrompt(c.prompt), `${JSON.stringify(c.prompt)} reads as other words`).toBeUndefined();
    }
  });

  it("keeps whole words: a rule for 'art' refuses none of these spellings of other words", () => {
    const spellings: Array<[string, string]> = [
      ["a smart artist", "a smart artist"],
      ["sm&#97;rt p&#x61;rty", "smart party"],
      ["ＳＭＡＲＴ ＡＲＴＩＳＴ", "smart artist"],
      ["sm()art", "smart"],
      ["sm\\art", "smart"],
      ["a\u0007rtist", "artist"],
      ["&amp;#97;rts", "arts"],
    ];
    for (const [prompt, reads] of spellings) {
      expect(ids(prompt), `${JSON.stringify(prompt)} should tokenize like ${JSON.stringify(reads)}`).toBe(ids(reads));
      expect(policy.checkPrompt(prompt), JSON.stringify(prompt)).toBeUndefined();
    }
  });

  it("refuses 'art' where the weighting parser cuts it off as a word of its own, as the model then reads it", () => {
    expect(ids("(sm)art")).toBe(ids("sm art"));
    expect(policy.checkPrompt("(sm)art")?.ruleNumber).toBe(7);
    expect(policy.checkPrompt("sm art")?.ruleNumber).toBe(7);
  });
});
