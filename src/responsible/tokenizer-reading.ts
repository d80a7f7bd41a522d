import { InputError } from "../errors.js";
import { PRE_TOKEN } from "../tokenizer/clip-tokenizer.js";
import { extractExtraNetworks } from "../tokenizer/extra-networks.js";
import { parsePromptWeights } from "../tokenizer/prompt-weighting.js";
import { cleanPromptText, cleanPromptTextKeepingCase } from "../tokenizer/text-cleanup.js";

/**
 * A prompt as the CLIP tokenizer reads it, so that the prompt policy judges what the text encoder will see
 * rather than the characters typed: "n&#117;de", "ｎｕｄｅ", "nu\u0007de" and "nu()de" all reach the model as
 * the token "nude". It is built from the tokenizer's own steps, in the pipeline's order (chunks.ts): the
 * weighting parser cuts the prompt into segments (markup and BREAK gone, adjacent text of equal weight
 * joined), each segment gets the tokenizer's clean-up (ftfy-like fixes, HTML unescaped twice, NFC, controls
 * and terminal escapes removed, whitespace collapsed, lower case) and CLIP's pre-tokenizer split.
 *
 * What it leaves out on purpose: the vocabulary. Added tokens (textual inversion, special tokens) are cut out
 * before the clean-up in the tokenizer; they only ever separate the text around them, so reading that text
 * whole finds no word the model does not see. Characters the clean-up keeps (zero-width space and joiners,
 * U+2060, soft hyphen, look-alike letters from other scripts) reach the model as bytes of their own: BPE
 * never merges them into the letters beside them, so "nu\u200bde" is read here, as by the model, as the
 * words "nu", "\u200b", "de".
 */
export interface TokenizerReading {
  /** The cleaned text of each segment, joined by a space: segments are tokenized apart, so no word spans two. */
  readonly text: string;
  /**
   * The pre-tokens of `text` (letter runs, single digits, runs of other symbols, contractions), joined by
   * single spaces. Each is byte-pair encoded on its own, so two prompts with the same words here give the
   * model the same token ids: "nude1" and "nude 1" both read "nude 1".
   */
  readonly words: string;
}

/** How the tokenizer reads `prompt`; `keepCase` skips only the final lower-casing. */
export function readAsTokenizer(prompt: string, keepCase = false): TokenizerReading {
  const clean = keepCase ? cleanPromptTextKeepingCase : cleanPromptText;
  const texts = segmentTexts(prompt)
    .map(clean)
    .filter((text) => text !== "");
  return { text: texts.join(" "), words: texts.map(preTokens).join(" ") };
}

/** How the tokenizer reads a policy term: cleaned as one segment (a term is literal text, not markup). */
export function readTermAsTokenizer(term: string): TokenizerReading {
  const text = cleanPromptText(term);
  return { text, words: preTokens(text) };
}

function preTokens(cleaned: string): string {
  // match() with a global regex starts at 0 and leaves lastIndex at 0, so the shared PRE_TOKEN stays clean.
  return (cleaned.match(PRE_TOKEN) ?? []).join(" ");
}

/**
 * The text of each weighted segment. A prompt whose weights do not parse never reaches the model (the pipeline
 * refuses it with the weighting parser's message), so it is read as one segment, markup and all, rather than
 * failing the policy check.
 */
function segmentTexts(written: string): string[] {
  const prompt = extractExtraNetworks(written).text;
  try {
    return parsePromptWeights(prompt).flatMap((segment) => (segment.kind === "text" ? [segment.text] : []));
  } catch (e) {
    if (e instanceof InputError) return [prompt];
    throw e;
  }
}
