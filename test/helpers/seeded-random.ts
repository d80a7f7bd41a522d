/** mulberry32: a small seeded generator, so every run of a fuzz test feeds the same inputs and a failure can be replayed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!;
}

/** A non-zero integer in [-range, range]. */
export function nonZero(r: () => number, range: number): number {
  const v = Math.floor(r() * range) + 1;
  return r() < 0.5 ? -v : v;
}
