/**
 * PyTorch's float32 Box-Muller transform for tensors of 16 or more elements, as its AVX2 CPU kernel
 * computes it: the Cephes-derived `log256_ps` / `sincos256_ps` polynomials from avx_mathfun.h, evaluated in
 * float32, with the multiply-adds that GCC contracts into FMA instructions fused here too. Unfused or
 * double-precision arithmetic lands one ulp off on about one value in a hundred, so every operation below
 * mirrors one vector instruction and rounds as it does.
 */
import { fmaf } from "./float-rounding.js";

const f = Math.fround;

/** 2^-24: the weight of one step of the 24-bit uniform integers. */
const STEP = 2 ** -24;
/** `_mm256_set1_ps(2.0f * c10::pi<double>)`: 2*pi rounded to float32. */
const TWO_PI = f(2 * Math.PI);

// Cephes logf: log(1 + x) ~ x - x^2/2 + x^3 * P(x) on [sqrt(1/2) - 1, sqrt(2) - 1], ln 2 split in two.
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(f);
const LOG_Q1 = f(-2.1219444e-4);
const LOG_Q2 = f(0.693359375);
const SQRT_HALF = f(0.707106781186547524);

// Cephes sinf/cosf: reduction by pi/4 in three parts, minimax polynomials on [-pi/4, pi/4].
const FOUR_OVER_PI = f(1.27323954473516);
const MINUS_DP1 = f(-0.78515625);
const MINUS_DP2 = f(-2.4187564849853515625e-4);
const MINUS_DP3 = f(-3.77489497744594108e-8);
const SIN_P0 = f(-1.9515295891e-4),
  SIN_P1 = f(8.3321608736e-3),
  SIN_P2 = f(-1.6666654611e-1);
const COS_P0 = f(2.443315711809948e-5),
  COS_P1 = f(-1.388731625493765e-3),
  COS_P2 = f(4.166664568298827e-2);

/**
 * log256_ps on one lane, for u = k * 2^-24 with k an integer in [1, 2^24]: the arguments `1 - uniform`
 * always have this form, which lets the exponent/mantissa split be read off k instead of float bits.
 */
function logOfSteps(k: number): number {
  // k * 2^-24 = mantissa * 2^exponent with mantissa in [0.5, 1): the vector code's (bits >> 23) - 126.
  const bitLength = 32 - Math.clz32(k);
  let exponent = bitLength - 24;
  let x = k / 2 ** bitLength;
  // Cephes folds mantissas below sqrt(1/2) up by one binade so x - 1 stays in [sqrt(1/2) - 1, sqrt(2) - 1).
  if (x < SQRT_HALF) {
    exponent -= 1;
    x = f(f(x - 1) + x);
  } else {
    x = f(x - 1);
  }
  const e = exponent;
  const z = f(x * x);
  let y = LOG_P[0]!;
  for (let i = 1; i < LOG_P.length; i++) y = fmaf(y, x, LOG_P[i]!);
  y = f(y * x);
  // GCC fuses `y*z + e*q1` around the y*z product; e*q1 stays a separately rounded multiply.
  y = fmaf(y, z, f(e * LOG_Q1));
  y = fmaf(-z, 0.5, y);
  x = f(x + y);
  return fmaf(e, LOG_Q2, x);
}

/**
 * Box-Muller on 16 uniforms held as 24-bit integers `bits[src .. src+16)`: lanes 0..7 give the radii,
 * lanes 8..15 the angles; writes cos-normals to out[dst .. dst+8) and sin-normals to out[dst+8 .. dst+16).
 */
export function boxMuller16(bits: Int32Array | Uint32Array, src: number, out: Float32Array, dst: number): void {
  for (let j = 0; j < 8; j++) {
    // 1 - u for u = k * 2^-24 is exactly (2^24 - k) * 2^-24, in (0, 1].
    const radius = f(Math.sqrt(-2 * logOfSteps(0x1000000 - bits[src + j]!)));
    const theta = f(TWO_PI * (bits[src + j + 8]! * STEP));

    // sincos256_ps on a non-negative angle: octant j rounded up to even, reduced argument x.
    let octant = Math.trunc(f(theta * FOUR_OVER_PI));
    octant = (octant + 1) & ~1;
    let x = fmaf(octant, MINUS_DP1, theta);
    x = fmaf(octant, MINUS_DP2, x);
    x = fmaf(octant, MINUS_DP3, x);
    const z = f(x * x);

    let c = fmaf(COS_P0, z, COS_P1);
    c = fmaf(c, z, COS_P2);
    c = f(c * z);
    c = fmaf(c, z, -f(z * 0.5));
    c = f(c + 1);

    let s = fmaf(SIN_P0, z, SIN_P1);
    s = fmaf(s, z, SIN_P2);
    s = f(s * z);
    s = fmaf(s, x, x);

    const swap = (octant & 2) !== 0;
    let sin = swap ? c : s;
    let cos = swap ? s : c;
    if (octant & 4) sin = -sin;
    if (((octant - 2) & 4) === 0) cos = -cos;

    // The kernel finishes with fmadd(n, std, mean) at std 1, mean 0: exact, except that -0 becomes +0.
    out[dst + j] = f(radius * cos) + 0;
    out[dst + j + 8] = f(radius * sin) + 0;
  }
}
