/**
 * HTML character references decoded the way Python's `html.unescape` decodes them, which CLIP's
 * reference clean-up applies (twice) to every prompt. Numeric references follow the HTML5 rules
 * (Windows-1252 for 0x80-0x9F, U+FFFD for surrogates and out-of-range values, nothing for
 * non-characters); named references cover the legacy set that may omit the semicolon plus common
 * typographic names. Names outside that set are left as written.
 */

import { WINDOWS_1252_C1 } from "./windows-1252.js";

/** Latin-1 entity names in code point order from U+00A0; HTML accepts these without a semicolon. */
const LATIN1_NAMES = (
  "nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr " +
  "deg plusmn sup2 sup3 acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest " +
  "Agrave Aacute Acirc Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml " +
  "ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig " +
  "agrave aacute acirc atilde auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml " +
  "eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml"
).split(" ");

/** Entities that need their semicolon: `name: code point`. */
const SEMICOLON_ONLY: Record<string, number> = {
  apos: 0x27,
  OElig: 0x152,
  oelig: 0x153,
  Scaron: 0x160,
  scaron: 0x161,
  Yuml: 0x178,
  fnof: 0x192,
  circ: 0x2c6,
  tilde: 0x2dc,
  ensp: 0x2002,
  emsp: 0x2003,
  thinsp: 0x2009,
  zwnj: 0x200c,
  zwj: 0x200d,
  lrm: 0x200e,
  rlm: 0x200f,
  ndash: 0x2013,
  mdash: 0x2014,
  lsquo: 0x2018,
  rsquo: 0x2019,
  sbquo: 0x201a,
  ldquo: 0x201c,
  rdquo: 0x201d,
  bdquo: 0x201e,
  dagger: 0x2020,
  Dagger: 0x2021,
  bull: 0x2022,
  hellip: 0x2026,
  permil: 0x2030,
  prime: 0x2032,
  Prime: 0x2033,
  lsaquo: 0x2039,
  rsaquo: 0x203a,
  euro: 0x20ac,
  trade: 0x2122,
  larr: 0x2190,
  uarr: 0x2191,
  rarr: 0x2192,
  darr: 0x2193,
  harr: 0x2194,
  minus: 0x2212,
  infin: 0x221e,
  ne: 0x2260,
  le: 0x2264,
  ge: 0x2265,
  starf: 0x2605,
  star: 0x2606,
  spades: 0x2660,
  clubs: 0x2663,
  hearts: 0x2665,
  diams: 0x2666,
};

function buildEntityTable(): { withSemicolon: Map<string, string>; bare: Map<string, string> } {
  const bare = new Map<string, string>();
  LATIN1_NAMES.forEach((name, i) => bare.set(name, String.fromCodePoint(0xa0 + i)));
  for (const [name, ch] of [
    ["amp", "&"],
    ["lt", "<"],
    ["gt", ">"],
    ["quot", '"'],
  ] as const) {
    bare.set(name, ch);
    bare.set(name.toUpperCase(), ch);
  }
  bare.set("COPY", "\u00a9");
  bare.set("REG", "\u00ae");
  const withSemicolon = new Map(bare);
  for (const [name, cp] of Object.entries(SEMICOLON_ONLY)) withSemicolon.set(name, String.fromCodePoint(cp));
  return { withSemicolon, bare };
}

const ENTITIES = buildEntityTable();

function isNonCharacter(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

function numericReference(digits: string, radix: 10 | 16): string {
  const cp = parseInt(digits, radix);
  if (cp === 0) return "\ufffd";
  if (cp === 0x0d) return "\r";
  if (cp >= 0x80 && cp <= 0x9f) return WINDOWS_1252_C1[cp - 0x80]!;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return "\ufffd";
  if (isNonCharacter(cp)) return "";
  return String.fromCodePoint(cp);
}

function namedReference(body: string): string {
  const full = body.endsWith(";") ? ENTITIES.withSemicolon.get(body.slice(0, -1)) : ENTITIES.bare.get(body);
  if (full !== undefined) return full;
  // "&ampxyz" reads as "&" + "xyz": the longest legacy name that prefixes the run wins.
  for (let n = body.length - 1; n > 1; n--) {
    const ch = ENTITIES.bare.get(body.slice(0, n));
    if (ch !== undefined) return ch + body.slice(n);
  }
  return "&" + body;
}

const CHARACTER_REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

export function htmlUnescape(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(CHARACTER_REFERENCE, (_match, body: string) => {
    if (body[0] !== "#") return namedReference(body);
    const hex = body[1] === "x" || body[1] === "X";
    const digits = body.slice(hex ? 2 : 1).replace(/;$/, "");
    return numericReference(digits, hex ? 16 : 10);
  });
}
