/**
 * CLIP's byte-level BPE works on strings in which every UTF-8 byte is one printable character, so that
 * vocabulary and merges files stay readable text without whitespace or control characters. Bytes that
 * are already printable Latin-1 stand for themselves; the others are moved up to U+0100 and beyond, in
 * byte order. The order of `BYTE_SYMBOLS` matters: OpenAI's vocabulary lists the printable bytes
 * first, then the moved ones, and token ids follow that order.
 */

function isPrintableLatin1(byte: number): boolean {
  return (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
}

function buildByteSymbols(): { order: readonly string[]; byByte: readonly string[] } {
  const order: string[] = [];
  const byByte: string[] = new Array<string>(256);
  for (let b = 0; b < 256; b++) {
    if (isPrintableLatin1(b)) {
      byByte[b] = String.fromCharCode(b);
      order.push(byByte[b]);
    }
  }
  let moved = 0;
  for (let b = 0; b < 256; b++) {
    if (!isPrintableLatin1(b)) {
      byByte[b] = String.fromCharCode(256 + moved++);
      order.push(byByte[b]);
    }
  }
  return { order, byByte };
}

const TABLES = buildByteSymbols();

/** The 256 byte symbols in vocabulary order (printable bytes first). */
export const BYTE_SYMBOLS: readonly string[] = TABLES.order;

const SYMBOL_TO_BYTE: ReadonlyMap<string, number> = new Map(TABLES.byByte.map((s, b) => [s, b]));

/** UTF-8 encodes `text` and spells each byte as its symbol. */
export function bytesToSymbols(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) out += TABLES.byByte[byte]!;
  return out;
}

/** Inverse of `bytesToSymbols`; characters that are not byte symbols are kept as their own UTF-8. */
export function symbolsToText(symbols: string): string {
  const bytes: number[] = [];
  for (const ch of symbols) {
    const byte = SYMBOL_TO_BYTE.get(ch);
    if (byte !== undefined) bytes.push(byte);
    else bytes.push(...Buffer.from(ch, "utf8"));
  }
  // Invalid sequences become U+FFFD, as the reference decodes with errors="replace".
  return Buffer.from(bytes).toString("utf8");
}
