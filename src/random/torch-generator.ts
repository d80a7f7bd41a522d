/**
 * A noise generator that reproduces `torch.Generator("cpu").manual_seed(seed)` followed by `torch.randn` /
 * `torch.rand` bit for bit, so a seed gives the same image here as in the Python reference pipelines.
 *
 * PyTorch's CPU kernels (as dispatched on x86-64 with AVX2, the build the reference fixtures come from) take
 * one of two routes for a normal tensor:
 * - 16 or more elements: draw every uniform first, then Box-Muller in blocks of 16 (lanes 0..7 with
 *   8..15); a ragged tail is redone by drawing 16 fresh uniforms for the last 16 elements. float32 runs the
 *   AVX2 kernel (see avx2-box-muller.ts); other dtypes run a scalar loop in that dtype's arithmetic.
 * - fewer than 16: one double-precision Box-Muller pair per two values, the second value cached in the
 *   generator and handed out by the next call, whichever tensor that call fills.
 * Both routes advance the same Mersenne Twister, so the order of calls matters exactly as in PyTorch.
 */
import { InputError } from "../errors.js";
import { boxMuller16 } from "./avx2-box-muller.js";
import { crLog, crSinCos } from "./correctly-rounded.js";
import { roundToBFloat16, roundToFloat16 } from "./float-rounding.js";
import { MT19937 } from "./mt19937.js";
import { seedInteger, type SeedInput } from "./seed.js";

/** Element types PyTorch can sample normals in; float16/bfloat16 come back widened to float32 values. */
export type RandomDtype = "float32" | "float64" | "float16" | "bfloat16";

/** What samplers need from a noise source; TorchGenerator satisfies it. */
export interface NoiseSource {
  randn(shape: readonly number[]): Float32Array;
}

/** PyTorch's vectorised normal path starts at this many elements. */
const VECTOR_MIN = 16;
const TWO_POW_32 = 2 ** 32;
const TWO_POW_MINUS_53 = 2 ** -53;

/** Uniform mantissa bits per dtype: `std::numeric_limits<T>::digits`. */
const UNIFORM_BITS: Record<Exclude<RandomDtype, "float64">, number> = { float32: 24, float16: 11, bfloat16: 8 };

export class TorchGenerator implements NoiseSource {
  /** The seed as PyTorch stores it (an unsigned 64-bit integer; only its low 32 bits seed the engine). */
  readonly seed: bigint;
  private readonly engine: MT19937;
  /** The unused second value of the last double Box-Muller pair (PyTorch's next_double_normal_sample). */
  private cachedNormal: number | undefined;

  /**
   * `seed`: an integer in [-2^63, 2^64) (a safe-integer number, a bigint or a decimal string); negative seeds
   * wrap as two's complement, as torch.manual_seed does.
   */
  constructor(seed: SeedInput) {
    this.seed = normalizeSeed(seed);
    this.engine = new MT19937(this.seed);
  }

  /** `torch.randn(shape, generator=g, dtype=dtype)`. */
  randn(shape: readonly number[], dtype?: "float32" | "float16" | "bfloat16"): Float32Array;
  randn(shape: readonly number[], dtype: "float64"): Float64Array;
  randn(shape: readonly number[], dtype?: RandomDtype): Float32Array | Float64Array;
  randn(shape: readonly number[], dtype: RandomDtype = "float32"): Float32Array | Float64Array {
    const n = elementCount(shape);
    checkDtype(dtype);
    if (n < VECTOR_MIN) return this.scalarNormals(n, dtype);
    switch (dtype) {
      case "float32":
        return this.vectorNormalsFloat32(n);
      case "float64":
        return this.vectorNormalsFloat64(n);
      case "float16":
      case "bfloat16":
        return this.vectorNormalsHalf(n, dtype);
    }
  }

  /** `torch.rand(shape, generator=g, dtype=dtype)`: uniform on [0, 1), one engine draw per element (two for float64). */
  rand(shape: readonly number[], dtype?: "float32" | "float16" | "bfloat16"): Float32Array;
  rand(shape: readonly number[], dtype: "float64"): Float64Array;
  rand(shape: readonly number[], dtype?: RandomDtype): Float32Array | Float64Array;
  rand(shape: readonly number[], dtype: RandomDtype = "float32"): Float32Array | Float64Array {
    const n = elementCount(shape);
    checkDtype(dtype);
    if (dtype === "float64") {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = this.uniform53();
      return out;
    }
    const bits = UNIFORM_BITS[dtype];
    const raw = new Uint32Array(n);
    this.engine.fill(raw);
    const out = new Float32Array(n);
    const mask = 2 ** bits - 1,
      scale = 2 ** -bits;
    for (let i = 0; i < n; i++) out[i] = (raw[i]! & mask) * scale;
    return out;
  }

  /** A double uniform on [0, 1) from 53 bits of two draws, the first supplying the high word. */
  private uniform53(): number {
    const hi = this.engine.nextUint32();
    const lo = this.engine.nextUint32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_MINUS_53;
  }

  /** PyTorch's `at::normal_distribution<double>` with mean 0 and std 1. */
  private normalDouble(): number {
    if (this.cachedNormal !== undefined) {
      const cached = this.cachedNormal;
      this.cachedNormal = undefined;
      return cached + 0; // `x * std + mean` turns -0 into +0
    }
    const u1 = this.uniform53();
    const u2 = this.uniform53();
    const radius = Math.sqrt(-2 * crLog(1 - u2));
    const { sin, cos } = crSinCos(2 * Math.PI * u1);
    this.cachedNormal = radius * sin;
    return radius * cos + 0;
  }

  private scalarNormals(n: number, dtype: RandomDtype): Float32Array | Float64Array {
    if (dtype === "float64") {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = this.normalDouble();
      return out;
    }
    // static_cast<T>(double): narrow to float first; Half and BFloat16 are then built from that float.
    const narrow = dtype === "float16" ? roundToFloat16 : dtype === "bfloat16" ? roundToBFloat16 : (x: number) => x;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = narrow(Math.fround(this.normalDouble()));
    return out;
  }

  /** Uniform integers with `bits` random low bits for n elements, plus 16 more when n is not a multiple of 16. */
  private drawBlocks(n: number, bits: number): Uint32Array {
    const tail = n % VECTOR_MIN === 0 ? 0 : VECTOR_MIN;
    const raw = new Uint32Array(n + tail);
    this.engine.fill(raw);
    const mask = 2 ** bits - 1;
    for (let i = 0; i < raw.length; i++) raw[i] = raw[i]! & mask;
    return raw;
  }

  private vectorNormalsFloat32(n: number): Float32Array {
    const raw = this.drawBlocks(n, 24);
    const out = new Float32Array(n);
    for (let i = 0; i + VECTOR_MIN <= n; i += VECTOR_MIN) boxMuller16(raw, i, out, i);
    // The ragged tail: the last 16 elements are recomputed from the 16 extra draws.
    if (n % VECTOR_MIN !== 0) boxMuller16(raw, n, out, n - VECTOR_MIN);
    return out;
  }

  private vectorNormalsFloat64(n: number): Float64Array {
    const tail = n % VECTOR_MIN === 0 ? 0 : VECTOR_MIN;
    const u = new Float64Array(n + tail);
    for (let i = 0; i < u.length; i++) u[i] = this.uniform53();
    const out = new Float64Array(n);
    const block = (src: number, dst: number): void => {
      for (let j = 0; j < 8; j++) {
        const radius = Math.sqrt(-2 * crLog(1 - u[src + j]!));
        const { sin, cos } = crSinCos(2 * Math.PI * u[src + j + 8]!);
        out[dst + j] = radius * cos + 0;
        out[dst + j + 8] = radius * sin + 0;
      }
    };
    for (let i = 0; i + VECTOR_MIN <= n; i += VECTOR_MIN) block(i, i);
    if (tail) block(n, n - VECTOR_MIN);
    return out;
  }

  /**
   * The scalar 16-block loop instantiated for c10::Half or c10::BFloat16. Half arithmetic computes in float
   * and rounds only on assignment; for BFloat16, c10 also overloads log/sqrt/cos/sin and the arithmetic
   * operators to return BFloat16, so every intermediate is rounded.
   */
  private vectorNormalsHalf(n: number, dtype: "float16" | "bfloat16"): Float32Array {
    const narrow = dtype === "float16" ? roundToFloat16 : roundToBFloat16;
    const bits = UNIFORM_BITS[dtype];
    const raw = this.drawBlocks(n, bits);
    const scale = 2 ** -bits;
    const out = new Float32Array(n);
    const f = Math.fround;
    const step = dtype === "bfloat16" ? narrow : (x: number) => x;
    // glibc's logf/sinf/cosf, emulated by rounding double results to float: where the two differ it is by
    // one float ulp, which survives the rounding to 11 or 8 bits only if it straddles a half/bfloat16
    // midpoint (about one time in 2^13 of an already rare event).
    const block = (src: number, dst: number): void => {
      for (let j = 0; j < 8; j++) {
        const u1 = 1 - raw[src + j]! * scale; // exact in both formats
        const radius = narrow(f(Math.sqrt(step(-2 * step(f(Math.log(u1)))))));
        const theta = narrow(f(2 * Math.PI * (raw[src + j + 8]! * scale)));
        out[dst + j] = narrow(f(radius * step(f(Math.cos(theta))))) + 0;
        out[dst + j + 8] = narrow(f(radius * step(f(Math.sin(theta))))) + 0;
      }
    };
    for (let i = 0; i + VECTOR_MIN <= n; i += VECTOR_MIN) block(i, i);
    if (n % VECTOR_MIN !== 0) block(n, n - VECTOR_MIN);
    return out;
  }
}

function normalizeSeed(seed: SeedInput): bigint {
  const big = seedInteger(seed);
  if (big < -(2n ** 63n) || big >= 2n ** 64n) {
    throw new InputError(`seed ${big} is out of range; pass a whole number between 0 and 2^64-1 (or down to -2^63)`);
  }
  return BigInt.asUintN(64, big);
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new InputError(`tensor shape [${shape.join(", ")}] must contain non-negative integers`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n) || n > 2 ** 31) {
    throw new InputError(`tensor shape [${shape.join(", ")}] has too many elements (${n}) for one noise tensor`);
  }
  return n;
}

function checkDtype(dtype: string): asserts dtype is RandomDtype {
  if (dtype !== "float32" && dtype !== "float64" && dtype !== "float16" && dtype !== "bfloat16") {
    throw new InputError(`unknown dtype "${dtype}" for random noise; use float32, float64, float16 or bfloat16`);
  }
}
