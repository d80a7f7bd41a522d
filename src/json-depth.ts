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
  const nextQuote = typeof text === "string" ? (from: number) => text.indexOf('"', from) : (from: number) => text.indexOf(0x22, from);
  const n = text.length;
  let depth = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const c = at(i);
    if (c === 0x22 /* " */) {
      // Jump to the next quote with indexOf: a long string (a base64 upload of megabytes) then costs a native
      // search instead of a loop here. That quote closes the string unless an odd run of backslashes escapes it.
      for (;;) {
        const q = nextQuote(i + 1);
        if (q < 0) return max; // unterminated: the rest is string
        let backslashes = 0;
        while (at(q - 1 - backslashes) === 0x5c /* \ */) backslashes++;
        i = q;
        if (backslashes % 2 === 0) break;
      }
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
