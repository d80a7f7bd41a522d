/**
 * The few pieces of WebAssembly's binary format that our hand-assembled SIMD kernels (half-simd.ts,
 * product-simd.ts) are written with: opcodes, LEB128 numbers, sections. The kernels are assembled at run time from
 * their instructions rather than shipped as binaries, so that what runs is what a reader sees here.
 */

export const I32 = 0x7f;
export const V128 = 0x7b;
const SIMD = 0xfd;

export const op = {
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
  i32Eq: 0x46,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
};

/** SIMD instructions by their sub-opcode (after the 0xfd prefix). */
export const simd = {
  load: 0x00,
  load32Splat: 0x09,
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
  f32x4Add: 0xe4,
  f32x4Mul: 0xe6,
  f32x4ConvertI32x4U: 0xfb,
};

export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
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

/** A SIMD instruction. */
export const s = (code: number): number[] => [SIMD, ...leb(code)];

/** A v128 constant of four equal 32-bit lanes. */
export const splat = (bits: number): number[] => {
  const lane = [bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0xff];
  return [...s(simd.const), ...lane, ...lane, ...lane, ...lane];
};

export const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
export const name = (text: string): number[] => [...leb(text.length), ...[...text].map((c) => c.charCodeAt(0))];

/** A module's memory: its own of `pages` 64 KiB pages, exported as "mem", or one imported as env.mem. */
export type ModuleMemory = { pages: number } | { imported: { shared: boolean; maxPages: number } };

/** A module of one function `exported` (parameters all i32, no result, `body` its locals and code) and a memory. */
export function singleFunctionModule(
  exported: string,
  params: number,
  body: number[],
  memory: ModuleMemory,
): Uint8Array<ArrayBuffer> {
  const own = "pages" in memory;
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, ...leb(params), ...new Array<number>(params).fill(I32), 0]),
    // limits: 0x00 a minimum, 0x03 a minimum and a maximum, shared
    ...(own
      ? []
      : section(2, [
          1,
          ...name("env"),
          ...name("mem"),
          0x02,
          memory.imported.shared ? 0x03 : 0x01,
          1,
          ...leb(memory.imported.maxPages),
        ])),
    ...section(3, [1, 0]),
    ...(own ? section(5, [1, 0x00, ...leb(memory.pages)]) : []),
    ...section(7, own ? [2, ...name(exported), 0x00, 0, ...name("mem"), 0x02, 0] : [1, ...name(exported), 0x00, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}
