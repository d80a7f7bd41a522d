/**
 * Correctly rounded double `log`, `sin` and `cos`.
 *
 * PyTorch's float64 noise (and its scalar path for small tensors) calls glibc's libm. glibc is not exactly
 * correctly rounded, but on Box-Muller arguments it agrees with the correctly rounded result for about
 * 99.9% of inputs, while V8's Math.log/sin/cos (fdlibm ports) disagree with it for 3 to 7% of them. So these
 * evaluate in double-double arithmetic (about 2^-100 relative error) and round once at the end: the closest
 * we can get to glibc without copying its tables.
 */

/** Veltkamp's constant: splits a double into two 26-bit halves whose products are exact. */
const SPLITTER = 134217729; // 2^27 + 1

/** A double-double accumulator (hi + lo, |lo| <= ulp(hi)/2); owned by one computation, never shared. */
class DoubleDouble {
  hi = 0;
  lo = 0;

  set(hi: number, lo: number): this {
    this.hi = hi;
    this.lo = lo;
    return this;
  }

  /** this = this * (bh + bl) */
  mul(bh: number, bl: number): this {
    const ah = this.hi;
    const p = ah * bh;
    let t = SPLITTER * ah;
    const ahh = t - (t - ah),
      ahl = ah - ahh;
    t = SPLITTER * bh;
    const bhh = t - (t - bh),
      bhl = bh - bhh;
    const err = ahh * bhh - p + ahh * bhl + ahl * bhh + ahl * bhl;
    return this.normalize(p, err + (ah * bl + this.lo * bh));
  }

  /** this = this + (bh + bl) */
  add(bh: number, bl: number): this {
    const ah = this.hi;
    const s = ah + bh;
    const bb = s - ah;
    const err = ah - (s - bb) + (bh - bb);
    return this.normalize(s, err + this.lo + bl);
  }

  /** The double nearest to hi + lo. */
  value(): number {
    return this.hi + this.lo;
  }

  private normalize(s: number, e: number): this {
    const hi = s + e;
    this.lo = e - (hi - s);
    this.hi = hi;
    return this;
  }
}

/** 1/n as a double-double pair. */
function reciprocal(n: number): readonly [number, number] {
  const hi = 1 / n;
  // The residual 1 - hi*n is exact when computed through the split product.
  const r = new DoubleDouble().set(hi, 0).mul(n, 0);
  return [hi, (1 - r.hi - r.lo) / n];
}

const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));

// ln 2 and pi/2 beyond double precision (pi/2 in three parts so reduction by up to 4 quadrants stays exact).
const LN2_HI = 0.6931471805599453;
const LN2_LO = 2.3190468138462996e-17;
const PIO2_1 = 1.5707963267948966;
const PIO2_2 = 6.123233995736766e-17;
const PIO2_3 = -1.4973849048591698e-33;

// Series coefficients. The leading ones carry double-double precision; the tails contribute below 2^-60 of
// the result, where plain doubles are accurate enough.
const ATANH_HEAD = [reciprocal(3), reciprocal(5)] as const;
const ATANH_TAIL = Array.from({ length: 18 }, (_, i) => 1 / (2 * i + 7)); // 1/7, 1/9, ..., 1/41
const SIN_HEAD = [reciprocal(-factorial(3)), reciprocal(factorial(5)), reciprocal(-factorial(7))] as const;
const SIN_TAIL = Array.from({ length: 9 }, (_, i) => (i % 2 === 0 ? 1 : -1) / factorial(2 * i + 9)); // 1/9!, -1/11!, ...
const COS_HEAD = [
  reciprocal(-factorial(2)),
  reciprocal(factorial(4)),
  reciprocal(-factorial(6)),
  reciprocal(factorial(8)),
] as const;
const COS_TAIL = Array.from({ length: 9 }, (_, i) => (i % 2 === 0 ? -1 : 1) / factorial(2 * i + 10)); // -1/10!, 1/12!, ...

/** Evaluates a polynomial in `x` by Horner's rule, highest coefficient last. */
function hornerDouble(coefficients: readonly number[], x: number): number {
  let acc = 0;
  for (let i = coefficients.length - 1; i >= 0; i--) acc = acc * x + coefficients[i]!;
  return acc;
}

/** log(x) for finite x > 0, correctly rounded. */
export function crLog(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return Math.log(x);
  // x = m * 2^k with m in [sqrt(1/2), sqrt(2)), so log m is small and k*ln2 carries the rest.
  let scaled = x;
  let k = 0;
  if (scaled < 2 ** -1000) {
    scaled *= 2 ** 100;
    k -= 100;
  }
  let e = Math.floor(Math.log2(scaled));
  if (2 ** e > scaled) e--;
  else if (2 ** (e + 1) <= scaled) e++;
  let m = scaled / 2 ** e;
  k += e;
  if (m >= Math.SQRT2) {
    m /= 2;
    k += 1;
  }
  // log m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1), |s| <= 0.172.
  const num = m - 1; // exact (Sterbenz)
  const den = m + 1;
  const denLo = m - (den - 1) + (1 - (den - (den - 1)));
  const q1 = num / den;
  const back = new DoubleDouble().set(q1, 0).mul(den, denLo);
  const q2 = (num - back.hi - back.lo) / den;
  const s = new DoubleDouble().set(q1, 0).add(q2, 0);
  const s2 = new DoubleDouble().set(s.hi, s.lo).mul(s.hi, s.lo);
  const acc = new DoubleDouble().set(hornerDouble(ATANH_TAIL, s2.hi), 0);
  for (let i = ATANH_HEAD.length - 1; i >= 0; i--) acc.mul(s2.hi, s2.lo).add(ATANH_HEAD[i]![0], ATANH_HEAD[i]![1]);
  acc.mul(s2.hi, s2.lo).add(1, 0).mul(s.hi, s.lo).mul(2, 0);
  if (k !== 0) {
    const kln2 = new DoubleDouble().set(LN2_HI, LN2_LO).mul(k, 0);
    acc.add(kln2.hi, kln2.lo);
  }
  return acc.value();
}

/** sin and cos of x, correctly rounded, for |x| up to a few hundred (Box-Muller angles lie in [0, 2pi)). */
export function crSinCos(x: number): { sin: number; cos: number } {
  if (!Number.isFinite(x) || Math.abs(x) > 1e5) return { sin: Math.sin(x), cos: Math.cos(x) };
  // r = x - q*pi/2 with |r| <= pi/4, carried in double-double.
  const q = Math.round(x / PIO2_1);
  const r = new DoubleDouble()
    .set(PIO2_1, PIO2_2)
    .mul(-q, 0)
    .add(-q * PIO2_3, 0)
    .add(x, 0);
  const r2 = new DoubleDouble().set(r.hi, r.lo).mul(r.hi, r.lo);

  const sin = new DoubleDouble().set(hornerDouble(SIN_TAIL, r2.hi), 0);
  for (let i = SIN_HEAD.length - 1; i >= 0; i--) sin.mul(r2.hi, r2.lo).add(SIN_HEAD[i]![0], SIN_HEAD[i]![1]);
  sin.mul(r2.hi, r2.lo).add(1, 0).mul(r.hi, r.lo);

  const cos = new DoubleDouble().set(hornerDouble(COS_TAIL, r2.hi), 0);
  for (let i = COS_HEAD.length - 1; i >= 0; i--) cos.mul(r2.hi, r2.lo).add(COS_HEAD[i]![0], COS_HEAD[i]![1]);
  cos.mul(r2.hi, r2.lo).add(1, 0);

  const s = sin.value(),
    c = cos.value();
  switch (((q % 4) + 4) % 4) {
    case 0:
      return { sin: s, cos: c };
    case 1:
      return { sin: c, cos: -s };
    case 2:
      return { sin: -s, cos: -c };
    default:
      return { sin: -c, cos: s };
  }
}
