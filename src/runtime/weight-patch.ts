import { InternalError } from "../errors.js";
import { availableParallelism } from "node:os";
import { addProductScalar, type ProductKernel, productKernel } from "./product-simd.js";
import { ProductThreads } from "./product-threads.js";

/**
 * An additive change to one fp32 weight tensor, in the layout the graph stores it (stored-layout.ts lowers a
 * change given in the checkpoint's layout):
 * - "product": the tensor gets a @ b added, a [m, r] and b [r, n]: a low-rank update (a LoRA) stays this small
 *   until it is merged (r is its rank). With `block`, the product is read as [m, n / block, block] and added to the
 *   tensor viewed as [n / block, m, block], its first two axes swapped: onnxruntime's blocked filter layouts keep
 *   each output block's filters together, and this keeps the product one matrix product all the same.
 * - "dense": the tensor gets `delta` (same length) added element by element.
 */
export type TensorPatch =
  | {
      readonly kind: "product";
      readonly a: Float32Array;
      readonly b: Float32Array;
      readonly m: number;
      readonly r: number;
      readonly n: number;
      readonly block?: number;
    }
  | { readonly kind: "dense"; readonly delta: Float32Array };

/** Patches by initializer name: every one of a tensor's patches is added to it. */
export type WeightPatches = ReadonlyMap<string, readonly TensorPatch[]>;

/** Elements of the tensor a patch applies to. */
export function patchLength(p: TensorPatch): number {
  return p.kind === "dense" ? p.delta.length : p.m * p.n;
}

/** Bytes of one WebAssembly page. */
const PAGE = 65536;

/**
 * Adds patches to weight tensors, in memory of its own that is reused from tensor to tensor (fresh memory for each
 * tensor cost more than the arithmetic on the 2-core VM this was measured on). Products go through a WebAssembly
 * SIMD kernel (product-simd.ts; about 40 GFLOP/s on one core there, where onnxruntime's runs spent 10 times as long
 * in page faults on the copies of their outputs), or through JavaScript where WebAssembly SIMD is missing; dense
 * patches are added element by element. Every product is rounded the same way whichever computes it.
 */
export class PatchApplier {
  private readonly kernel: ProductKernel | undefined = productKernel();
  private readonly threads: ProductThreads | undefined;
  /** Where WebAssembly SIMD is missing: the applier's memory. */
  private plain = new ArrayBuffer(0);

  /** `threads`: how many threads compute large products (default: the machine's cores); `close` stops them. */
  constructor(threads = availableParallelism()) {
    this.threads = this.kernel && new ProductThreads(this.kernel, threads);
  }

  /**
   * `length` values, put in place by `fill`, with every patch added: a view of this applier's memory, valid until
   * its next call.
   */
  merge(
    length: number,
    fill: (values: Float32Array) => void,
    patches: readonly TensorPatch[],
    what: string,
  ): Float32Array {
    for (const p of patches) {
      if (patchLength(p) !== length)
        throw new InternalError(`${what}: a patch of ${patchLength(p)} values for a tensor of ${length}`);
    }
    // W, then A and B of the largest product, each 16-byte aligned.
    const wBytes = align(length * 4);
    const factors = Math.max(
      0,
      ...patches.map((p) => (p.kind === "product" ? align(p.a.length * 4) + p.b.length * 4 : 0)),
    );
    const memory = this.memory(wBytes + factors);
    const w = new Float32Array(memory, 0, length);
    fill(w);
    for (const p of patches) {
      if (p.kind === "dense") {
        for (let i = 0; i < length; i++) w[i]! += p.delta[i]!;
        continue;
      }
      const a = new Float32Array(memory, wBytes, p.a.length);
      const b = new Float32Array(memory, wBytes + align(p.a.length * 4), p.b.length);
      a.set(p.a);
      b.set(p.b);
      this.addProduct(w, a, b, p);
    }
    return w;
  }

  /** `weight` with every patch added, in this applier's memory (see `merge`). */
  apply(weight: Float32Array, patches: readonly TensorPatch[], what: string): Float32Array {
    return this.merge(weight.length, (values) => values.set(weight), patches, what);
  }

  /**
   * W += A B where W is [m, n] or, with a block, [n / block, m, block] (see TensorPatch); A and B in this applier's
   * memory. The kernel takes tiles of four rows by eight columns of each run of contiguous columns; the rest goes
   * through addProductScalar, with the same rounding.
   */
  private addProduct(w: Float32Array, a: Float32Array, b: Float32Array, p: TensorPatch & { kind: "product" }): void {
    const { m, r, n } = p;
    const width = p.block ?? n;
    const groups = n / width;
    const at = p.block
      ? (i: number, j: number) => Math.floor(j / width) * m * width + i * width + (j % width)
      : (i: number, j: number) => i * n + j;
    const rows = this.threads ? m - (m % 4) : 0;
    const panels = this.threads ? Math.floor(width / 8) : 0;
    if (rows > 0 && panels > 0) {
      const call = {
        w: w.byteOffset,
        a: a.byteOffset,
        b: b.byteOffset,
        rows,
        r,
        panels,
        wRow: width * 4,
        bRow: n * 4,
        groups,
        wGroup: m * width * 4,
        bGroup: width * 4,
      };
      // Small products are not worth waking another thread for.
      if (rows * n * r >= SPLIT_WORK) this.threads!.run(call);
      else this.kernel!.run(call);
    }
    for (let start = 0; start < n; start += width) {
      addProductScalar(w, at, a, b, r, n, [0, m], [start + panels * 8, start + width]);
      addProductScalar(w, at, a, b, r, n, [rows, m], [start, start + panels * 8]);
    }
  }

  /** Stops the threads that computed products. */
  async close(): Promise<void> {
    await this.threads?.close();
  }

  /** This applier's memory, grown to at least `bytes` (earlier views of it are then detached). */
  private memory(bytes: number): ArrayBuffer {
    if (this.kernel) {
      const have = this.kernel.memory.buffer.byteLength;
      if (have < bytes) this.kernel.memory.grow(Math.ceil((bytes - have) / PAGE));
      return this.kernel.memory.buffer;
    }
    if (this.plain.byteLength < bytes) this.plain = new ArrayBuffer(bytes);
    return this.plain;
  }
}

/** Multiply-adds of a product below which it runs on the calling thread alone. */
const SPLIT_WORK = 2 ** 22;

/** `bytes` rounded up to 16. */
function align(bytes: number): number {
  return Math.ceil(bytes / 16) * 16;
}
