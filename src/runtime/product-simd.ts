import { I32, op, s, simd, singleFunctionModule, sleb, V128 } from "./wasm-assembly.js";

/**
 * W += A @ B for a rank-r update (a LoRA), in WebAssembly SIMD over memory of its own. onnxruntime computes the
 * product many times faster, but through onnxruntime-node every output of a run, even one written into the
 * caller's array, is also copied into a fresh ArrayBuffer: fresh memory, one page fault per 4 KiB, about 15 us
 * each on the 2-core VM this was measured on. For a product with an inner size of 32 that fault costs 50 times
 * the arithmetic (a [11520, 32] x [32, 1280] product: 230 ms of CPU, 14,400 faults, against 4 ms at 80 GFLOP/s),
 * and merging a LoRA into every layer of SD1.5 makes 3.4 GB of such outputs. Here the weights are patched in place
 * in memory that is reused from tensor to tensor.
 *
 * The kernel: four rows of W by eight columns (eight f32x4 sums in registers) at a time, each sum built over the
 * inner axis in order, sum = sum + a * b (no fused multiply-add: WebAssembly has none), then added to W once.
 * `addProductScalar` computes the rows and columns that do not fill a tile with exactly that rounding, so the
 * result does not depend on where a value falls.
 */
/** Arguments of one kernel call, in bytes of the kernel's memory: see ProductKernel.run. */
export interface ProductCall {
  w: number;
  a: number;
  b: number;
  rows: number;
  r: number;
  panels: number;
  wRow: number;
  bRow: number;
  groups: number;
  wGroup: number;
  bGroup: number;
}

/** The order of ProductCall's fields as the kernel takes them. */
export const CALL_FIELDS = [
  "w",
  "a",
  "b",
  "rows",
  "r",
  "panels",
  "wRow",
  "bRow",
  "groups",
  "wGroup",
  "bGroup",
] as const satisfies readonly (keyof ProductCall)[];

export interface ProductKernel {
  readonly memory: WebAssembly.Memory;
  /** The module's bytes, for another thread to instantiate over the same (shared) memory. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /**
   * For each of `groups` groups g, and `panels` runs of eight columns q: W_g[i, q*8 + c] += sum_k A[i, k]
   * B_g[k, q*8 + c] for the first `rows` rows (a multiple of 4). Addresses and strides are in bytes in `memory`:
   * row i of W_g starts at w + g * wGroup + i * wRow, its panel q 32 bytes further each; A is [rows, r] packed at
   * `a`; row k of B_g starts at b + g * bGroup + k * bRow.
   */
  run(call: ProductCall): void;
}

/** The largest memory the kernel addresses: 4 GiB, WebAssembly's 32-bit limit. */
export const MAX_PAGES = 65536;

/**
 * The kernel over a memory of its own, shared between threads where this JavaScript allows it (ProductThreads);
 * undefined where WebAssembly SIMD is missing (the caller computes in JavaScript then).
 */
export function productKernel(): ProductKernel | undefined {
  for (const shared of [true, false]) {
    try {
      const bytes = singleFunctionModule("addProduct", CALL_FIELDS.length, body(), {
        imported: { shared, maxPages: MAX_PAGES },
      });
      if (!WebAssembly.validate(bytes)) return undefined;
      const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared });
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } });
      const run = instance.exports.addProduct as (...args: number[]) => void;
      return { memory, bytes, run: (call) => run(...CALL_FIELDS.map((f) => call[f])) };
    } catch {
      // no shared memory here: try without
    }
  }
  return undefined;
}

/**
 * The same sums in JavaScript, for rows [rowStart, rowEnd) and columns [colStart, colEnd) of a tile, with the
 * kernel's rounding. `at(i, j)` is the index in `w` of W[i, j]; A is [rows, r] and B [r, n] (row stride `bRow`
 * values) in the same array as W or not.
 */
export function addProductScalar(
  w: Float32Array,
  at: (i: number, j: number) => number,
  a: Float32Array,
  b: Float32Array,
  r: number,
  bRow: number,
  rows: readonly [number, number],
  cols: readonly [number, number],
): void {
  const f = Math.fround;
  for (let i = rows[0]; i < rows[1]; i++) {
    for (let j = cols[0]; j < cols[1]; j++) {
      let sum = 0;
      for (let k = 0; k < r; k++) sum = f(sum + f(a[i * r + k]! * b[k * bRow + j]!));
      const x = at(i, j);
      w[x] = f(w[x]! + sum);
    }
  }
}

// ---- the module ----

// parameters
const W0 = 0,
  A0 = 1,
  B0 = 2,
  M0 = 3,
  R = 4,
  PANELS = 5,
  WROW = 6,
  BROW = 7,
  GROUPS = 8,
  WGROUP = 9,
  BGROUP = 10;
// i32 locals
const W = 11,
  A = 12,
  B = 13,
  M = 14,
  Q = 15,
  K = 16,
  AP = 17,
  BP = 18,
  WQ = 19,
  BQ = 20,
  R4 = 21,
  R8 = 22,
  R12 = 23,
  W2 = 24,
  W3 = 25;
// v128 locals
const BV0 = 26,
  BV1 = 27,
  SPLAT = 28,
  ACC = 29; // 8 sums: row t, half h at ACC + 2t + h

const get = (local: number) => [op.localGet, local];
const set = (local: number) => [op.localSet, local];
const add = (x: number, y: number, to: number) => [...get(x), ...get(y), op.i32Add, ...set(to)];
const addConst = (x: number, c: number) => [...get(x), op.i32Const, ...sleb(c), op.i32Add, ...set(x)];
/** A v128 load or store at the address on the stack plus `offset`, aligned to 4 bytes. */
const mem = (code: number, offset: number) => [...s(code), 2, ...sleb(offset)];
const zero = [...s(simd.const), ...new Array<number>(16).fill(0)];
/** The address of row t of the tile in W. */
const wRowAddress = (t: number) => (t === 0 ? get(WQ) : [...get(WQ), ...get([0, WROW, W2, W3][t]!), op.i32Add]);

function body(): number[] {
  const code: number[] = [2, 15, I32, 11, V128];
  code.push(...get(R), op.i32Const, 4, op.i32Mul, ...set(R4));
  code.push(...add(R4, R4, R8), ...add(R8, R4, R12), ...add(WROW, WROW, W2), ...add(W2, WROW, W3));
  // groups
  code.push(op.block, 0x40, op.loop, 0x40, ...get(GROUPS), op.i32Eqz, op.brIf, 1);
  code.push(...get(W0), ...set(W), ...get(A0), ...set(A), ...get(B0), ...set(B), ...get(M0), ...set(M));
  // rows, four at a time
  code.push(op.block, 0x40, op.loop, 0x40, ...get(M), op.i32Eqz, op.brIf, 1);
  code.push(op.i32Const, 0, ...set(Q), ...get(W), ...set(WQ), ...get(B), ...set(BQ));
  // panels of eight columns
  code.push(op.block, 0x40, op.loop, 0x40, ...get(Q), ...get(PANELS), op.i32Eq, op.brIf, 1);
  for (let i = 0; i < 8; i++) code.push(...zero, ...set(ACC + i));
  code.push(...get(R), ...set(K), ...get(A), ...set(AP), ...get(BQ), ...set(BP));
  // the inner axis
  code.push(op.block, 0x40, op.loop, 0x40, ...get(K), op.i32Eqz, op.brIf, 1);
  code.push(...get(BP), ...mem(simd.load, 0), ...set(BV0), ...get(BP), ...mem(simd.load, 16), ...set(BV1));
  for (let t = 0; t < 4; t++) {
    const aAddress = t === 0 ? get(AP) : [...get(AP), ...get([0, R4, R8, R12][t]!), op.i32Add];
    code.push(...aAddress, ...mem(simd.load32Splat, 0), ...set(SPLAT));
    for (let h = 0; h < 2; h++) {
      const acc = ACC + 2 * t + h;
      code.push(...get(acc), ...get(SPLAT), ...get(h === 0 ? BV0 : BV1), ...s(simd.f32x4Mul), ...s(simd.f32x4Add));
      code.push(...set(acc));
    }
  }
  code.push(...addConst(AP, 4), ...add(BP, BROW, BP), ...addConst(K, -1), op.br, 0, op.end, op.end);
  // W += the sums
  for (let t = 0; t < 4; t++) {
    for (let h = 0; h < 2; h++) {
      code.push(...wRowAddress(t), ...wRowAddress(t), ...mem(simd.load, 16 * h), ...get(ACC + 2 * t + h));
      code.push(...s(simd.f32x4Add), ...mem(simd.store, 16 * h));
    }
  }
  code.push(...addConst(WQ, 32), ...addConst(BQ, 32), ...addConst(Q, 1), op.br, 0, op.end, op.end);
  // the next four rows
  code.push(...get(A), ...get(R8), ...get(R8), op.i32Add, op.i32Add, ...set(A));
  code.push(...get(W), ...get(W2), ...get(W2), op.i32Add, op.i32Add, ...set(W));
  code.push(...addConst(M, -4), op.br, 0, op.end, op.end);
  // the next group
  code.push(...add(W0, WGROUP, W0), ...add(B0, BGROUP, B0), ...addConst(GROUPS, -1), op.br, 0, op.end, op.end);
  code.push(op.end);
  return code;
}
