/**
 * Prompt clean-up before CLIP's pre-tokenizer, in the reference's order: ftfy's `fix_text`, HTML
 * unescaping twice, whitespace collapsed and stripped, lower case.
 *
 * Of ftfy we keep the deterministic fixes that change what CLIP sees in prompts people type or paste:
 * C1 controls read as Windows-1252, Latin ligatures and full-width forms taken apart, curly quotes
 * straightened, line breaks unified, lone surrogates replaced, terminal escapes and invisible control
 * characters removed, NFC. Its mojibake detection (guessing that "cafÃ©" meant "café") is heuristic
 * and not reproduced: such text is tokenized as written.
 */

import { htmlUnescape } from "./html-unescape.js";
import { WINDOWS_1252_C1 } from "./windows-1252.js";

/**
 * The characters Python's `str.isspace` accepts: the reference collapses runs of these, so the set
 * differs from JavaScript's `\s` (which lacks U+001C-U+001F and U+0085 and includes U+FEFF).
 */
export const PYTHON_WHITESPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

const WHITESPACE_RUN = new RegExp(`[${PYTHON_WHITESPACE}]+`, "g");
const EDGE_WHITESPACE = new RegExp(`^[${PYTHON_WHITESPACE}]+|[${PYTHON_WHITESPACE}]+$`, "g");

const C1_CONTROL = /[\x80-\x9f]/g;
/** Single-character Latin ligatures and digraphs; their compatibility decomposition is the fix. */
const LATIN_LIGATURE = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;
/** Ideographic space and the half-width/full-width block, narrowed to their ordinary forms. */
const WIDTH_VARIANT = /[\u3000\uff01-\uffef]/g;
const SINGLE_QUOTE_VARIANT = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTE_VARIANT = /[\u201c-\u201f]/g;
const LINE_BREAK = /\r\n|[\r\u2028\u2029\x85]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const TERMINAL_ESCAPE = /\x1b\[[\d;]*[a-zA-Z]/g;
/** Controls and invisible format characters that never belong in prompt text (tab and newlines stay). */
const INVISIBLE_CONTROL = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

function fixTextOnce(text: string): string {
  return text
    .replace(C1_CONTROL, (ch) => WINDOWS_1252_C1[ch.charCodeAt(0) - 0x80]!)
    .replace(LATIN_LIGATURE, (ch) => ch.normalize("NFKC"))
    .replace(WIDTH_VARIANT, (ch) => (ch === "\u3000" ? " " : ch.normalize("NFKC")))
    .replace(SINGLE_QUOTE_VARIANT, "'")
    .replace(DOUBLE_QUOTE_VARIANT, '"')
    .replace(LINE_BREAK, "\n")
    .replace(LONE_SURROGATE, "\ufffd")
    .replace(TERMINAL_ESCAPE, "")
    .replace(INVISIBLE_CONTROL, "")
    .normalize("NFC");
}

/** The subset of ftfy's `fix_text` described above; like ftfy, repeats until nothing changes. */
export function fixText(text: string): string {
  for (let i = 0; i < 16; i++) {
    const fixed = fixTextOnce(text);
    if (fixed === text) break;
    text = fixed;
  }
  return text;
}

/** Collapses whitespace runs to one space and strips the ends. */
export function collapseWhitespace(text: string): string {
  return text.replace(WHITESPACE_RUN, " ").replace(EDGE_WHITESPACE, "");
}

/** The text CLIP's pre-tokenizer sees for a prompt. */
export function cleanPromptText(text: string): string {
  return cleanPromptTextKeepingCase(text).toLowerCase();
}

/**
 * Every clean-up step but the last, lower case: the prompt policy's case-sensitive rules read the
 * letters the tokenizer reads as the user cased them.
 */
export function cleanPromptTextKeepingCase(text: string): string {
  return collapseWhitespace(htmlUnescape(htmlUnescape(fixText(text))));
}
