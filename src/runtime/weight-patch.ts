import { InternalError } from "../errors.js";
import { GraphBuilder } from "../onnx/builder.js";
import { DataType } from "../onnx/graph.js";
import { serializeGraph } from "../onnx/serialize.js";
import { Session, type SessionOptions } from "./session.js";

/**
 * An additive change to one fp32 weight tensor, in the layout the graph stores it (stored-layout.ts lowers a
 * change given in the checkpoint's layout):
 * - "product": the tensor gets a @ b added, a [m, r] and b [r, n]: a low-rank update (a LoRA) stays this small
 *   until it is merged (r is its rank). With `block`, the product is read as [m, n / block, block] and added to the
 *   tensor viewed as [n / block, m, block], its first two axes swapped: onnxruntime's blocked filter layouts keep
 *   each output block's filters together, and this keeps the product one large matrix product all the same.
 * - "dense": the tensor gets `delta` (same length) added element by element.
 */
export type TensorPatch =
  | { readonly kind: "product"; readonly a: Float32Array; readonly b: Float32Array; readonly m: number; readonly r: number; readonly n: number; readonly block?: number }
  | { readonly kind: "dense"; readonly delta: Float32Array };

/** Patches by initializer name: every one of a tensor's patches is added to it. */
export type WeightPatches = ReadonlyMap<string, readonly TensorPatch[]>;

/** Elements of the tensor a patch applies to. */
export function patchLength(p: TensorPatch): number {
  return p.kind === "dense" ? p.delta.length : p.m * p.n;
}

const IO = { weight: "weight", a: "a", b: "b", out: "merged" } as const;

/**
 * Adds patches to weight tensors. Products run through onnxruntime (small MatMul + Add graphs with dynamic shapes,
 * opened once): merging a rank-32 LoRA into every attention and convolution of SD1.5 is about 55 GFLOP, minutes in
 * JavaScript loops. Outputs go to two buffers of its own, reused from tensor to tensor: on the 2-core VM this was
 * measured on, fresh memory for each tensor cost more than the arithmetic. Dense patches are added in place.
 */
export class PatchApplier {
  private readonly buffers = [new Float32Array(0), new Float32Array(0)];

  private constructor(private readonly plain: Session, private readonly product: Session) {}

  static async create(opts: SessionOptions = {}): Promise<PatchApplier> {
    const options = { threads: opts.threads, executionProviders: ["cpu"] };
    const a = (g: GraphBuilder) => g.input(IO.a, DataType.FLOAT, ["m", "r"], [1, 1]);
    const b = (g: GraphBuilder) => g.input(IO.b, DataType.FLOAT, ["r", "n"], [1, 1]);
    // weight [m, n] + a [m, r] @ b [r, n]
    const plain = new GraphBuilder("weight_patch");
    const w = plain.input(IO.weight, DataType.FLOAT, ["m", "n"], [1, 1]);
    plain.output(plain.add(w, plain.matmul(a(plain), b(plain))), IO.out, ["m", "n"]);
    // a [m, r] @ b [r, n] alone, for blocked layouts: added with the blocks' axes swapped (addSwapped).
    const product = new GraphBuilder("weight_patch_product");
    product.output(product.matmul(a(product), b(product)), IO.out, ["m", "n"]);
    return new PatchApplier(await Session.create(serializeGraph(plain), options), await Session.create(serializeGraph(product), options));
  }

  /**
   * `weight` with every patch added: `weight` itself (changed in place) when only dense patches apply, else one of
   * this applier's buffers, valid until the next call.
   */
  async apply(weight: Float32Array, patches: readonly TensorPatch[], what: string): Promise<Float32Array> {
    let w = weight;
    for (const p of patches) {
      if (patchLength(p) !== w.length) throw new InternalError(`${what}: a patch of ${patchLength(p)} values for a tensor of ${w.length}`);
      if (p.kind === "dense") {
        for (let i = 0; i < w.length; i++) w[i]! += p.delta[i]!;
        continue;
      }
      const slot = this.buffers[0]!.buffer === w.buffer ? 1 : 0;
      if (this.buffers[slot]!.length < w.length) this.buffers[slot] = new Float32Array(w.length);
      const out = this.buffers[slot]!.subarray(0, w.length);
      const factors = { [IO.a]: { data: p.a, dims: [p.m, p.r] }, [IO.b]: { data: p.b, dims: [p.r, p.n] } };
      if (p.block) {
        // A transpose of the product inside onnxruntime cost twice the product itself (measured); this loop costs little.
        await this.product.runInto(factors, { [IO.out]: { data: out, dims: [p.m, p.n] } });
        addSwapped(w, out, p.m, p.n / p.block, p.block);
        continue;
      }
      await this.plain.runInto({ [IO.weight]: { data: w, dims: [p.m, p.n] }, ...factors }, { [IO.out]: { data: out, dims: [p.m, p.n] } });
      w = out;
    }
    return w;
  }

  async release(): Promise<void> {
    await this.plain.release();
    await this.product.release();
  }
}

/** weight [groups, m, block] += product [m, groups, block] with its first two axes swapped. */
function addSwapped(weight: Float32Array, product: Float32Array, m: number, groups: number, block: number): void {
  const rowLength = groups * block;
  for (let row = 0; row < m; row++) {
    for (let g = 0; g < groups; g++) {
      const w = (g * m + row) * block;
      const p = row * rowLength + g * block;
      for (let k = 0; k < block; k++) weight[w + k]! += product[p + k]!;
    }
  }
}
