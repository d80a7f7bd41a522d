/**
 * AUTOMATIC1111's attention syntax, so that prompts copied from A1111 weight the same words the same way:
 *
 *   (words)       weight x1.1; nesting multiplies: ((words)) x1.21
 *   (words:1.3)   weight x1.3
 *   [words]       weight /1.1
 *   \( \) \[ \]   literal brackets, \\ a literal backslash (a lone backslash is dropped)
 *   BREAK         (upper case, a whole word) ends the current 75-token chunk
 *
 * As in A1111, a bracket left open weights everything after it, a closing bracket with nothing open is
 * literal text, and adjacent text of equal weight is joined into one segment (segments are tokenized
 * separately, so the joining decides where words may be split).
 *
 * One deliberate difference: A1111 also multiplies its BREAK marker by enclosing brackets, after which
 * the marker no longer ends the chunk and is fed to CLIP as the word "break" with a negative weight.
 * Here BREAK inside brackets still ends the chunk.
 */

import { InputError } from "../errors.js";
import { PYTHON_WHITESPACE } from "./text-cleanup.js";

export type PromptSegment =
  | { readonly kind: "text"; readonly text: string; readonly weight: number }
  | { readonly kind: "break" };

export const ROUND_BRACKET_FACTOR = 1.1;
export const SQUARE_BRACKET_FACTOR = 1 / 1.1;

/** Alternatives in priority order: escapes, openers, an explicit weight with its closer, closers, plain text. */
const ATTENTION_TOKEN = new RegExp(
  [
    String.raw`\\\(`,
    String.raw`\\\)`,
    String.raw`\\\[`,
    String.raw`\\\]`,
    String.raw`\\\\`,
    String.raw`\\`,
    String.raw`\(`,
    String.raw`\[`,
    String.raw`:[${PYTHON_WHITESPACE}]*([+-]?[.\d]+)[${PYTHON_WHITESPACE}]*\)`,
    String.raw`\)`,
    String.raw`\]`,
    String.raw`[^\\()[\]:]+`,
    ":",
  ].join("|"),
  "gu",
);

/** BREAK as a whole word (Unicode word characters around it, as Python's \b sees them), with its spaces. */
const BREAK_KEYWORD = new RegExp(
  `[${PYTHON_WHITESPACE}]*(?<![\\p{L}\\p{N}_])BREAK(?![\\p{L}\\p{N}_])[${PYTHON_WHITESPACE}]*`,
  "u",
);

interface Piece {
  text: string;
  weight: number;
  isBreak: boolean;
}

/** Splits a prompt into weighted text segments and chunk breaks; never empty. */
export function parsePromptWeights(prompt: string): PromptSegment[] {
  const pieces: Piece[] = [];
  const openRound: number[] = [];
  const openSquare: number[] = [];

  const multiplyFrom = (start: number, factor: number): void => {
    for (let p = start; p < pieces.length; p++) if (!pieces[p]!.isBreak) pieces[p]!.weight *= factor;
  };

  for (const match of prompt.matchAll(ATTENTION_TOKEN)) {
    const token = match[0];
    const explicitWeight = match[1];
    if (token.startsWith("\\")) {
      pieces.push({ text: token.slice(1), weight: 1, isBreak: false });
    } else if (token === "(") {
      openRound.push(pieces.length);
    } else if (token === "[") {
      openSquare.push(pieces.length);
    } else if (explicitWeight !== undefined && openRound.length > 0) {
      multiplyFrom(openRound.pop()!, parseWeight(explicitWeight, token));
    } else if (token === ")" && openRound.length > 0) {
      multiplyFrom(openRound.pop()!, ROUND_BRACKET_FACTOR);
    } else if (token === "]" && openSquare.length > 0) {
      multiplyFrom(openSquare.pop()!, SQUARE_BRACKET_FACTOR);
    } else {
      token.split(BREAK_KEYWORD).forEach((part, i) => {
        if (i > 0) pieces.push({ text: "", weight: 1, isBreak: true });
        pieces.push({ text: part, weight: 1, isBreak: false });
      });
    }
  }
  // Brackets never closed apply to the end, outermost first as A1111 multiplies them.
  for (const start of openRound) multiplyFrom(start, ROUND_BRACKET_FACTOR);
  for (const start of openSquare) multiplyFrom(start, SQUARE_BRACKET_FACTOR);

  const segments: PromptSegment[] = [];
  for (const piece of pieces) {
    const last = segments[segments.length - 1];
    if (piece.isBreak) segments.push({ kind: "break" });
    else if (last?.kind === "text" && last.weight === piece.weight)
      segments[segments.length - 1] = { ...last, text: last.text + piece.text };
    else segments.push({ kind: "text", text: piece.text, weight: piece.weight });
  }
  return segments.length > 0 ? segments : [{ kind: "text", text: "", weight: 1 }];
}

function parseWeight(digits: string, token: string): number {
  const weight = Number(digits);
  if (Number.isNaN(weight)) {
    throw new InputError(
      `the attention weight in "${token}" is not a number: write it like (words:1.2), or escape the bracket as \\) to keep it literal`,
    );
  }
  return weight;
}
