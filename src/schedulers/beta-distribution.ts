/**
 * The quantile function (inverse CDF) of the Beta(a, b) distribution, which the "Beta" schedule type spreads its
 * steps by (Lee et al. 2024, "Beta Sampling is All You Need"). Double precision: the CDF is the regularized
 * incomplete beta function, evaluated by its continued fraction, and inverted by bisection refined by Newton.
 */

/** ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = c[0];
  for (let i = 1; i < 9; i++) sum += c[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The continued fraction of I_x(a, b) (modified Lentz), valid where x < (a + 1) / (a + b + 2). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    for (const num of [
      (m * (b - m) * x) / ((a + m2 - 1) * (a + m2)),
      (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1)),
    ]) {
      d = 1 + num * d;
      if (Math.abs(d) < tiny) d = tiny;
      c = 1 + num / c;
      if (Math.abs(c) < tiny) c = tiny;
      d = 1 / d;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-16) break;
  }
  return h;
}

/** ln of the Beta(a, b) density's normaliser times x^a (1-x)^b, the prefactor of the continued fraction. */
function logPrefactor(x: number, a: number, b: number): number {
  return logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
}

/** The Beta(a, b) CDF at x: the regularized incomplete beta function I_x(a, b). */
export function betaCdf(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logPrefactor(x, a, b)) * betaFraction(x, a, b)) / a;
  return 1 - (Math.exp(logPrefactor(1 - x, b, a)) * betaFraction(1 - x, b, a)) / b;
}

/** The Beta(a, b) quantile: the x in [0, 1] with betaCdf(x) = p. */
export function betaQuantile(p: number, a: number, b: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  let lo = 0;
  let hi = 1;
  let x = 0.5;
  // Bisection first: the density is unbounded at the ends for a, b < 1, where Newton alone can overshoot.
  for (let i = 0; i < 60; i++) {
    x = (lo + hi) / 2;
    if (betaCdf(x, a, b) < p) lo = x;
    else hi = x;
  }
  const logNorm = logGamma(a + b) - logGamma(a) - logGamma(b);
  for (let i = 0; i < 3; i++) {
    const density = Math.exp(logNorm + (a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x));
    const next = x - (betaCdf(x, a, b) - p) / density;
    if (!(next > lo && next < hi)) break;
    x = next;
  }
  return x;
}
