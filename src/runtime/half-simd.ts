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

const I32 = 0x7f;
const V128 = 0x7b;
const SIMD = 0xfd;
const op = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32Add: 0x6a,
  i32Sub: 0x6b,
};
/** SIMD instructions by their sub-opcode (after the 0xfd prefix). */
const simd = {
  load: 0x00,
  store: 0x0b,
  const: 0x0c,
  and: 0x4e,
  or: 0x50,
  bitselect: 0x52,
  i32x4LtU: 0x3a,
  i32x4GeU: 0x40,
  i32x4ExtendLowI16x8U: 0xa9,
  i32x4ExtendHighI16x8U: 0xaa,
  i32x4Shl: 0xab,
  i32x4Add: 0xae,
  f32x4Mul: 0xe6,
  f32x4ConvertI32x4U: 0xfb,
};

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const s = (code: number): number[] => [SIMD, ...leb(code)];
const splat = (bits: number): number[] => {
  const lane = [bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0xff];
  return [...s(simd.const), ...lane, ...lane, ...lane, ...lane];
};
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
const name = (text: string): number[] => [...leb(text.length), ...[...text].map((c) => c.charCodeAt(0))];

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
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 3, I32, I32, I32, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, ...leb(pages)]),
    ...section(7, [2, ...name("cvt"), 0x00, 0, ...name("mem"), 0x02, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}
