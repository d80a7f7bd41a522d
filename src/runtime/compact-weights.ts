import { InternalError } from "../errors.js";
import type { InitializerDef } from "../onnx/graph.js";

/**
 * fp32 weights kept on disk in half the bytes, exactly: a tensor whose every value is an IEEE half (what an fp16
 * checkpoint converts to) is stored as fp16, one whose values all have a zero low half (from bf16) as bf16, any
 * other as it is. Converting back gives the same fp32 bits, so a cached graph computes what the fp32 one did; an
 * fp32 checkpoint stays fp32 (its values are not halves), and a layout permutation of such weights (nchwc-layout.ts)
 * keeps them halves. A tensor whose values are int8 values times per-row or per-column scales (InitializerDef.int8:
 * weight-only int8, onnx/quantize-weights.ts) is stored as its scales (fp32) then its int8 values, and given back
 * as the same fp32 products.
 */

export type StoredFormat = "f16" | "bf16" | "f32" | Int8Format;
/** int8 values with one fp32 scale per row (of the tensor's last axis) or per column. */
export type Int8Format = "i8-rows" | "i8-cols";

export interface CompactTensor {
  format: StoredFormat;
  bytes: Uint8Array;
}

/** The smallest exact form of `data` (f32: the bytes as they are). */
export function compactTensor(data: Float32Array): CompactTensor {
  return compactEncoder()(data);
}

/**
 * `compactTensor` that writes its halves into one buffer of its own, reused from call to call (so the bytes it
 * returns are valid until the next call): a 3.4 GB graph is encoded tensor by tensor without allocating each
 * tensor's output afresh, which costs page faults that dominate on some virtual machines.
 */
export function compactEncoder(): (data: Float32Array, init?: Pick<InitializerDef, "int8">) => CompactTensor {
  let scratch = new Uint16Array(0);
  return (data, init) => {
    if (init?.int8) return int8Tensor(init.int8, data.length);
    if (scratch.length < data.length) scratch = new Uint16Array(data.length);
    const out = scratch.subarray(0, data.length);
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    if (toHalfExactly(bits, out)) return { format: "f16", bytes: new Uint8Array(out.buffer, 0, out.byteLength) };
    if (toBfloatExactly(bits, out)) return { format: "bf16", bytes: new Uint8Array(out.buffer, 0, out.byteLength) };
    return { format: "f32", bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  };
}

/** Scales then int8 values, as StoredTensors reads an Int8Format back. */
function int8Tensor(int8: NonNullable<InitializerDef["int8"]>, length: number): CompactTensor {
  const { q, scales } = int8.quantized();
  if (q.length !== length) throw new InternalError(`int8 values: ${q.length} for a tensor of ${length}`);
  const bytes = new Uint8Array(scales.byteLength + q.byteLength);
  bytes.set(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
  bytes.set(new Uint8Array(q.buffer, q.byteOffset, q.byteLength), scales.byteLength);
  return { format: int8.axis === 0 ? "i8-rows" : "i8-cols", bytes };
}

/**
 * The fp32 values of int8 `q` (elements `at`, `at` + 1, ... of a tensor of `scales.length` rows or columns and
 * `count` elements) into `out`: each q × its row's or column's scale.
 */
export function expandInt8Into(
  format: Int8Format,
  scales: Float32Array,
  count: number,
  q: Int8Array,
  at: number,
  out: Float32Array,
): void {
  if (format === "i8-cols") {
    const n = scales.length;
    for (let i = 0, c = at % n; i < q.length; i++) {
      out[i] = q[i]! * scales[c]!;
      if (++c === n) c = 0;
    }
    return;
  }
  // Row by row: one scale for a run of values.
  const per = count / scales.length;
  for (let i = 0, row = Math.floor(at / per); i < q.length; row++) {
    const s = scales[row]!;
    const end = Math.min(q.length, (row + 1) * per - at);
    for (; i < end; i++) out[i] = q[i]! * s;
  }
}

function toHalfExactly(bits: Uint32Array, out: Uint16Array): boolean {
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp >= 113 && exp <= 142) {
      // a normal half: 10 mantissa bits, the other 13 must be zero
      if ((mant & 0x1fff) !== 0) return false;
      out[i] = sign | ((exp - 112) << 10) | (mant >>> 13);
    } else if (exp === 0 && mant === 0) {
      out[i] = sign;
    } else if (exp >= 103 && exp <= 112) {
      // a subnormal half: (1.mant) 2^(exp-127) = m 2^-24 with m < 1024
      const shift = 126 - exp;
      const full = mant | 0x800000;
      if ((full & ((1 << shift) - 1)) !== 0) return false;
      out[i] = sign | (full >>> shift);
    } else if (exp === 0xff && mant === 0) {
      out[i] = sign | 0x7c00;
    } else {
      return false; // out of range, an fp32 subnormal, or NaN (whose payload a half may not keep)
    }
  }
  return true;
}

function toBfloatExactly(bits: Uint32Array, out: Uint16Array): boolean {
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0xffff) !== 0) return false;
    out[i] = x >>> 16;
  }
  return true;
}

/** fp32 bit patterns of the 65536 halves, built on first use. */
let halfBits: Uint32Array | undefined;

function halfTable(): Uint32Array {
  if (halfBits) return halfBits;
  const t = new Uint32Array(65536);
  const f = new Float32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) t[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp !== 0) t[h] = sign | ((exp + 112) << 23) | (mant << 13);
    else f[h] = (sign ? -mant : mant) * 2 ** -24; // zero and subnormals: exact in fp32
  }
  halfBits = t;
  return t;
}

/** Writes the fp32 values of `stored` (in `format`) into `out`, which holds exactly as many elements. */
export function expandInto(format: StoredFormat, stored: Uint8Array, out: Float32Array): void {
  if (format === "i8-rows" || format === "i8-cols")
    throw new InternalError(`stored ${format} data expands with its scales (expandInt8Into)`);
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  const size = format === "f32" ? 4 : 2;
  if (stored.byteLength !== out.length * size || stored.byteOffset % size !== 0) {
    throw new InternalError(`stored ${format} data of ${stored.byteLength} bytes cannot fill ${out.length} values`);
  }
  if (format === "f32") {
    outBits.set(new Uint32Array(stored.buffer, stored.byteOffset, out.length));
    return;
  }
  const halves = new Uint16Array(stored.buffer, stored.byteOffset, out.length);
  if (format === "bf16") {
    for (let i = 0; i < halves.length; i++) outBits[i] = halves[i]! << 16;
    return;
  }
  const table = halfTable();
  for (let i = 0; i < halves.length; i++) outBits[i] = table[halves[i]!]!;
}
