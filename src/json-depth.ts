/**
 * Nesting bounds for JSON that comes from outside (HTTP bodies, checkpoint headers, model folders' config files).
 *
 * `JSON.parse` itself copes with deep nesting, but everything that walks the result afterwards recurses (schema
 * validation, `JSON.stringify` when the value is stored or echoed, serializers): a 10 KB text nested 5,000 deep
 * then fails far from where it entered, as a stack overflow. Checking the depth on the text, before parsing,
 * stops it at the door with a message that says what was wrong.
 */

/** Deeper than any legitimate input we read (A1111 script arguments reach about 6; configs and headers 3 to 4). */
export const MAX_JSON_DEPTH = 64;

/**
 * The nesting depth of JSON text (`[]` and `{}` count one level each), or `limit + 1` as soon as it exceeds
 * `limit`: one linear scan without recursion, which skips string contents (brackets inside strings do not
 * count) and never allocates. Text that is not valid JSON gets a depth too; parsing reports the syntax error.
 */
export function jsonDepth(text: string | Uint8Array, limit = MAX_JSON_DEPTH): number {
  const at = typeof text === "string" ? (i: number) => text.charCodeAt(i) : (i: number) => text[i]!;
  const n = text.length;
  let depth = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const c = at(i);
    if (c === 0x22 /* " */) {
      i = closingQuote(text, i);
      if (i < 0) return max; // unterminated: the rest is string
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return max;
}

/** True when `text` nests arrays and objects deeper than `limit`. */
export function jsonTooDeep(text: string | Uint8Array, limit = MAX_JSON_DEPTH): boolean {
  return jsonDepth(text, limit) > limit;
}

/**
 * The index of the quote that closes the JSON string whose opening quote is at `open`, or -1 when it is not
 * closed. It jumps from quote to quote with indexOf, so a long string (a base64 upload of megabytes) costs a
 * native search rather than a loop here; a quote closes the string unless an odd run of backslashes escapes it.
 */
export function closingQuote(text: string | Uint8Array, open: number): number {
  const at = typeof text === "string" ? (i: number) => text.charCodeAt(i) : (i: number) => text[i]!;
  for (let i = open; ; ) {
    const q = typeof text === "string" ? text.indexOf('"', i + 1) : text.indexOf(0x22, i + 1);
    if (q < 0) return -1;
    let backslashes = 0;
    while (at(q - 1 - backslashes) === 0x5c /* \ */) backslashes++;
    if (backslashes % 2 === 0) return q;
    i = q;
  }
}
