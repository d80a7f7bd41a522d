/**
 * Byte-pair encoding of one pre-token: start from its symbols (the last one marked as word end with
 * "</w>") and repeatedly join the adjacent pair that ranks earliest in the merges list, every
 * occurrence left to right, until no adjacent pair is in the list.
 */

export const END_OF_WORD = "</w>";

/** Bounds the per-encoder cache: prompts repeat words, but a long-running server sees unbounded text. */
const CACHE_LIMIT = 20_000;

export class BytePairEncoder {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, readonly string[]>();

  /** `merges` in priority order, as listed in merges.txt. */
  constructor(merges: readonly (readonly [string, string])[]) {
    // A pair listed twice takes its later rank, as the reference's dict built in file order does.
    merges.forEach(([a, b], rank) => this.ranks.set(pairKey(a, b), rank));
  }

  /** `word` spelled in byte symbols (no spaces); returns its BPE tokens, the last ending in "</w>". */
  encode(word: string): readonly string[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const tokens = this.merge(word);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, tokens);
    return tokens;
  }

  private merge(word: string): string[] {
    let symbols = Array.from(word);
    if (symbols.length === 0) return [];
    symbols[symbols.length - 1] += END_OF_WORD;
    while (symbols.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(pairKey(symbols[i]!, symbols[i + 1]!));
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = symbols[best]!;
      const second = symbols[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (symbols[i] === first && i + 1 < symbols.length && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]!);
          i += 1;
        }
      }
      symbols = merged;
    }
    return symbols;
  }
}

/** Symbols never contain a space (byte 0x20 has its own symbol), so a space separates the pair. */
function pairKey(a: string, b: string): string {
  return `${a} ${b}`;
}
