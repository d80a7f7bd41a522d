/**
 * Rounding to the narrow float formats PyTorch computes its noise in, on plain JS numbers. Every function
 * here returns the exact value the C++ code would hold after the same operation, so chains of them stay
 * bit-identical to the reference.
 */

/**
 * float32 fused multiply-add, `fmaf(a, b, c)`, for float32 inputs: one rounding of the exact a*b+c.
 * The compiled AVX2 kernels use FMA instructions, and a separately rounded multiply differs in the last bit.
 */
export function fmaf(a: number, b: number, c: number): number {
  // Two 24-bit significands multiply exactly within a double's 53 bits; only the sum is rounded.
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s) return r;
  // Rounding s (already rounded once) to float32 can only differ from rounding the exact sum when s sits
  // exactly halfway between two floats; then the sign of the lost residual decides.
  const other = s + (s - r);
  if (Math.fround(other) !== other) return r;
  const bv = s - p;
  const residual = p - (s - bv) + (c - bv);
  if (residual === 0) return r;
  return residual > 0 === other > s ? other : r;
}

/** Rounds a float32 value to IEEE binary16 (c10::Half's round-to-nearest-even), returned as a number. */
export function roundToFloat16(x: number): number {
  return roundToPrecision(x, 11, -14, 65504);
}

/** Rounds a float32 value to bfloat16 (c10::BFloat16's round-to-nearest-even), returned as a number. */
export function roundToBFloat16(x: number): number {
  return roundToPrecision(x, 8, -126, 3.3895313892515355e38);
}

/**
 * Round-to-nearest-even to `bits` significant bits, with gradual underflow below 2^minExponent and
 * infinity above `maxFinite`. Works on exact powers of two, so every step is exact in double arithmetic.
 */
function roundToPrecision(x: number, bits: number, minExponent: number, maxFinite: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  // log2 may be off by one right at a power of two; correct it against exact powers.
  if (2 ** e > ax) e--;
  else if (2 ** (e + 1) <= ax) e++;
  const ulp = 2 ** (Math.max(e, minExponent) - (bits - 1));
  const q = ax / ulp;
  let n = Math.floor(q);
  const frac = q - n;
  if (frac > 0.5 || (frac === 0.5 && n % 2 === 1)) n++;
  const rounded = n * ulp;
  if (rounded > maxFinite) return x < 0 ? -Infinity : Infinity;
  return x < 0 ? -rounded : rounded;
}
