/**
 * Integers beyond 2^53 - 1 in JSON, kept exact at the HTTP edge.
 *
 * Seeds run to 2^64 - 1, and clients that write JSON from integers of any size (Python's json, which every
 * AUTOMATIC1111 client uses) send `"seed": 18446744073709551615` as a number. JSON.parse turns that into
 * 18446744073709551616, another seed. Node 22's JSON.parse gives revivers the source text, Node 20's does not,
 * so the body's text is read here instead: the literal of each top-level seed field is found by a scan that
 * works on every Node version, and the parsed value is replaced by the exact bigint. Only those fields: a bigint
 * anywhere else (options, script arguments) would reach code that cannot store or print one.
 *
 * The other way, A1111's responses carry seeds as JSON numbers, as A1111 writes them (Python reads them exactly):
 * see json-exact.ts.
 */
import { closingQuote } from "../json-depth.js";

/** The top-level request fields that hold 64-bit seeds, in our API and A1111's. */
export const SEED_FIELDS: ReadonlySet<string> = new Set(["seed", "subseed"]);

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * For the JSON text of an object, the exact value of each top-level field named in `fields` whose (last, as
 * JSON.parse keeps the last of repeated keys) value is an integer literal beyond +-(2^53 - 1). One linear scan
 * that skips string contents with a native search (closingQuote); text that is not valid JSON gives
 * whatever it finds, and parsing reports the syntax error.
 */
export function bigIntegerFields(text: string, fields: ReadonlySet<string>): Map<string, bigint> {
  const found = new Map<string, bigint>();
  const n = text.length;
  let depth = 0;
  let key: string | undefined; // the top-level key whose value comes next
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i + 1;
      i = closingQuote(text, i);
      if (i < 0) return found;
      if (depth !== 1) continue;
      // A top-level string followed by ':' is a key; one that is a value ends that member.
      let j = i + 1;
      while (isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) === 0x3a /* : */) {
        key = text.slice(start, i);
        i = j;
      } else if (key !== undefined) {
        found.delete(key);
        key = undefined;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth === 1 && key !== undefined) {
        found.delete(key);
        key = undefined;
      }
      depth++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (depth === 1 && key !== undefined && (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39))) {
      let j = i + 1;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      const fraction = text.charCodeAt(j) === 0x2e /* . */ || (text.charCodeAt(j) | 0x20) === 0x65; /* e or E */
      const literal = text.slice(i, j);
      if (fields.has(key)) {
        const value = fraction || !/^-?\d+$/.test(literal) ? undefined : BigInt(literal);
        if (value !== undefined && (value > MAX_SAFE || value < -MAX_SAFE)) found.set(key, value);
        else found.delete(key);
      }
      key = undefined;
      i = j - 1;
    } else if (depth === 1 && key !== undefined && !isSpace(c) && c !== 0x2c /* , */) {
      // true, false or null
      found.delete(key);
      key = undefined;
    }
  }
  return found;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
