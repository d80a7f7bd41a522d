/**
 * IEEE half to float32 in WebAssembly SIMD, eight values per step: rebuilding the SD1.5 UNet's fp32 weights from
 * the compact cache converts 860 M halves at each load, 2.5-4 ns each in a JavaScript loop over a table. The
 * module is assembled here from its instructions (below) rather than shipped as a binary; where WebAssembly SIMD is
 * missing, `halfConverter` returns undefined and the caller keeps its JavaScript loop.
 *
 * For each half h: its magnitude m = h & 0x7fff gives the float's bits as (m << 13) + 0x38000000 for a normal
 * value (the exponent rebased from 15 to 127), float(m) * 2^-24 for zero and subnormals (m < 0x400, exact), and
 * (m << 13) | 0x7f800000 for infinities and NaNs (m >= 0x7c00, payload kept); the sign bit moves up 16 places.
 */

import { op, s, simd, sleb, splat, singleFunctionModule, V128 } from "./wasm-assembly.js";

export interface HalfConverter {
  /** Bytes available at `input` (halves) and at `output` (twice as many: floats). */
  readonly capacity: number;
  /** Where to put halves to convert. */
  readonly input: Uint8Array;
  /** Where the floats are after `convert(count)`. */
  readonly output: Uint8Array;
  /** Converts the first `count` halves of `input` (a multiple of 8) into `output`. */
  convert(count: number): void;
}

const PAGE = 65536;

/** A converter with room for `capacity` bytes of halves (rounded up to whole pages). */
export function halfConverter(capacity: number): HalfConverter | undefined {
  const inputBytes = Math.ceil(capacity / PAGE) * PAGE;
  const pages = (3 * inputBytes) / PAGE;
  let exports: { cvt: (src: number, dst: number, n: number) => void; mem: WebAssembly.Memory };
  try {
    const bytes = assemble(pages);
    if (!WebAssembly.validate(bytes)) return undefined;
    exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as typeof exports;
  } catch {
    return undefined;
  }
  const buffer = exports.mem.buffer;
  return {
    capacity: inputBytes,
    input: new Uint8Array(buffer, 0, inputBytes),
    output: new Uint8Array(buffer, inputBytes, 2 * inputBytes),
    convert: (count) => exports.cvt(0, inputBytes, count),
  };
}

// ---- the module ----

// locals: 0 src, 1 dst, 2 n (params); 3 v, 4 x, 5 m, 6 r (v128)
const SRC = 0,
  DST = 1,
  N = 2,
  V = 3,
  X = 4,
  M = 5,
  R = 6;

/** Converts the four halves (as u32 lanes) on the stack to floats. */
function convertLanes(): number[] {
  return [
    op.localTee,
    X,
    ...splat(0x7fff),
    ...s(simd.and),
    op.localSet,
    M,
    // zero and subnormals, then normals, chosen by m < 0x400
    op.localGet,
    M,
    ...s(simd.f32x4ConvertI32x4U),
    ...splat(0x33800000),
    ...s(simd.f32x4Mul),
    op.localGet,
    M,
    op.i32Const,
    13,
    ...s(simd.i32x4Shl),
    ...splat(0x38000000),
    ...s(simd.i32x4Add),
    op.localGet,
    M,
    ...splat(0x400),
    ...s(simd.i32x4LtU),
    ...s(simd.bitselect),
    op.localSet,
    R,
    // infinities and NaNs where m >= 0x7c00
    op.localGet,
    M,
    op.i32Const,
    13,
    ...s(simd.i32x4Shl),
    ...splat(0x7f800000),
    ...s(simd.or),
    op.localGet,
    R,
    op.localGet,
    M,
    ...splat(0x7c00),
    ...s(simd.i32x4GeU),
    ...s(simd.bitselect),
    // the sign
    op.localGet,
    X,
    ...splat(0x8000),
    ...s(simd.and),
    op.i32Const,
    16,
    ...s(simd.i32x4Shl),
    ...s(simd.or),
  ];
}

function assemble(pages: number): Uint8Array<ArrayBuffer> {
  const body = [
    1,
    4,
    V128, // four v128 locals
    op.block,
    0x40,
    op.loop,
    0x40,
    op.localGet,
    N,
    op.i32Eqz,
    op.brIf,
    1,
    op.localGet,
    SRC,
    ...s(simd.load),
    4,
    0,
    op.localSet,
    V,
    op.localGet,
    DST,
    op.localGet,
    V,
    ...s(simd.i32x4ExtendLowI16x8U),
    ...convertLanes(),
    ...s(simd.store),
    4,
    0,
    op.localGet,
    DST,
    op.localGet,
    V,
    ...s(simd.i32x4ExtendHighI16x8U),
    ...convertLanes(),
    ...s(simd.store),
    4,
    16,
    op.localGet,
    SRC,
    op.i32Const,
    ...sleb(16),
    op.i32Add,
    op.localSet,
    SRC,
    op.localGet,
    DST,
    op.i32Const,
    ...sleb(32),
    op.i32Add,
    op.localSet,
    DST,
    op.localGet,
    N,
    op.i32Const,
    ...sleb(8),
    op.i32Sub,
    op.localSet,
    N,
    op.br,
    0,
    op.end,
    op.end,
    op.end,
  ];
  return singleFunctionModule("cvt", 3, body, { pages });
}
