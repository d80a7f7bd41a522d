/**
 * The handful of PyTorch and NumPy numeric routines whose exact rounding the reference schedules depend on.
 *
 * The reference builds its tables in float32 (torch) and its schedules in float64 (numpy). Scalars are kept as
 * JS numbers; `f32` rounds a double to the nearest float32, and because a double carries more than twice a
 * float's precision, rounding an exact double +, -, *, / or sqrt of float32 operands gives the float32 result
 * bit for bit. That is how scalar coefficients below reproduce torch's float32 arithmetic.
 */

/** Rounds to the nearest float32 (torch's float32 scalar arithmetic, one operation at a time). */
export const f32 = Math.fround;

/** numpy's `round`: halves go to the even neighbour (np.linspace(0, 999, 5).round() gives 500 for 499.5). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round sends halves up; step back down where that made an odd number from an exact half.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy.linspace(start, stop, num, endpoint) in float64, as numpy computes it (i * step + start). */
export function npLinspace(start: number, stop: number, num: number, endpoint = true): Float64Array {
  const out = new Float64Array(num);
  const div = endpoint ? num - 1 : num;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) out[i] = div > 0 ? i * step + start : i * (stop - start) + start;
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/** numpy.arange(start, stop, step) for float64 arguments: numpy fills start + i * (second - first). */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(len);
  if (len === 0) return out;
  out[0] = start;
  if (len === 1) return out;
  const delta = start + step - start;
  for (let i = 1; i < len; i++) out[i] = start + i * delta;
  return out;
}

/**
 * numpy.interp(x, [0, 1, ..., fp.length - 1], fp) for one x: linear interpolation between table entries, with
 * numpy's order of operations (slope * (x - x_j) + f_j) and its exact hit and clamping rules.
 */
export function npInterpIndex(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (Number.isNaN(x)) return x;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (x === j) return fp[j];
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

/**
 * torch.linspace(start, end, steps, dtype=float32) on the CPU. Torch computes the first half forwards from
 * `start` and the second half backwards from `end`, eight floats at a time with `base + j * step`, so the
 * rounding of each entry depends on that layout; the SD beta schedule inherits it (checked bit for bit against
 * the reference's betas).
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  // Torch's compiler fuses `start + step * idx` into one fused multiply-add: the product is exact in a double,
  // so one rounding of the double sum reproduces it.
  const scalarAt = (idx: number): number => (idx < halfway ? f32(s + step * idx) : f32(e - step * (steps - idx - 1)));
  const vec = 8; // AVX2 Vectorized<float>::size(); torch's loop takes two vectors per iteration
  let i = 0;
  for (; i <= steps - 2 * vec; i += 2 * vec) {
    for (const at of [i, i + vec]) {
      const base = scalarAt(at);
      for (let j = 0; j < vec; j++) out[at + j] = f32(base + f32(j * step));
    }
  }
  for (; i < steps; i++) out[i] = scalarAt(i);
  return out;
}

/** torch.cumprod on a float32 CPU tensor: the running product is kept in double, each output rounded to float. */
export function torchCumprodF32(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i];
    out[i] = acc;
  }
  return out;
}
