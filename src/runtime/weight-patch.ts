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

const IO = { weight: "weight", a: "a", b: "b", out: "merged" } as const;

/**
 * Adds patches to weight tensors. Products run through onnxruntime (small MatMul + Add graphs with dynamic shapes,
 * opened once): merging a rank-32 LoRA into every attention and convolution of SD1.5 is about 55 GFLOP, minutes in
 * JavaScript loops. Outputs go to two buffers of its own, reused from tensor to tensor: on the 2-core VM this was
 * measured on, fresh memory for each tensor cost more than the arithmetic. Dense patches are added in place.
 */
export class PatchApplier {
  private readonly buffers = [new Float32Array(0), new Float32Array(0)];
  /** `b` of a blocked patch with its columns' blocks as the leading axis. */
  private blockedB = new Float32Array(0);

  private constructor(
    private readonly plain: Session,
    private readonly blocked: Session,
  ) {}

  static async create(opts: SessionOptions = {}): Promise<PatchApplier> {
    // Many short runs with JavaScript work between them: threads that spin after each run only take the CPU from it.
    const options: SessionOptions = { threads: opts.threads, executionProviders: ["cpu"], spinning: false };
    const a = (g: GraphBuilder) => g.input(IO.a, DataType.FLOAT, ["m", "r"], [1, 1]);
    // weight [m, n] + a [m, r] @ b [r, n]
    const plain = new GraphBuilder("weight_patch");
    const w = plain.input(IO.weight, DataType.FLOAT, ["m", "n"], [1, 1]);
    plain.output(plain.add(w, plain.matmul(a(plain), plain.input(IO.b, DataType.FLOAT, ["r", "n"], [1, 1]))), IO.out, [
      "m",
      "n",
    ]);
    // weight [groups, m, block] + a [m, r] @ b [groups, r, block]: the product of a blocked layout, batched by block
    // (a transpose of the whole product inside onnxruntime cost twice the product itself; this moves only b).
    const blocked = new GraphBuilder("weight_patch_blocked");
    const wb = blocked.input(IO.weight, DataType.FLOAT, ["groups", "m", "block"], [1, 1, 1]);
    const bb = blocked.input(IO.b, DataType.FLOAT, ["groups", "r", "block"], [1, 1, 1]);
    blocked.output(blocked.add(wb, blocked.matmul(a(blocked), bb)), IO.out, ["groups", "m", "block"]);
    return new PatchApplier(
      await Session.create(serializeGraph(plain), options),
      await Session.create(serializeGraph(blocked), options),
    );
  }

  /**
   * `weight` with every patch added: `weight` itself (changed in place) when only dense patches apply, else one of
   * this applier's buffers, valid until the next call.
   */
  async apply(weight: Float32Array, patches: readonly TensorPatch[], what: string): Promise<Float32Array> {
    let w = weight;
    for (const p of patches) {
      if (patchLength(p) !== w.length)
        throw new InternalError(`${what}: a patch of ${patchLength(p)} values for a tensor of ${w.length}`);
      if (p.kind === "dense") {
        for (let i = 0; i < w.length; i++) w[i]! += p.delta[i]!;
        continue;
      }
      const slot = this.buffers[0]!.buffer === w.buffer ? 1 : 0;
      if (this.buffers[slot]!.length < w.length) this.buffers[slot] = new Float32Array(w.length);
      const out = this.buffers[slot]!.subarray(0, w.length);
      const a = { data: p.a, dims: [p.m, p.r] };
      if (p.block) {
        const groups = p.n / p.block;
        const dims = [groups, p.m, p.block];
        await this.blocked.runInto(
          {
            [IO.weight]: { data: w, dims },
            [IO.a]: a,
            [IO.b]: { data: this.blockMajor(p.b, p.r, groups, p.block), dims: [groups, p.r, p.block] },
          },
          { [IO.out]: { data: out, dims } },
        );
      } else {
        await this.plain.runInto(
          { [IO.weight]: { data: w, dims: [p.m, p.n] }, [IO.a]: a, [IO.b]: { data: p.b, dims: [p.r, p.n] } },
          { [IO.out]: { data: out, dims: [p.m, p.n] } },
        );
      }
      w = out;
    }
    return w;
  }

  /** b [r, groups * block] as [groups, r, block], in a buffer of this applier's. */
  private blockMajor(b: Float32Array, r: number, groups: number, block: number): Float32Array {
    if (this.blockedB.length < b.length) this.blockedB = new Float32Array(b.length);
    const out = this.blockedB.subarray(0, b.length);
    for (let g = 0; g < groups; g++) {
      for (let j = 0; j < r; j++)
        out.set(b.subarray((j * groups + g) * block, (j * groups + g + 1) * block), (g * r + j) * block);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.plain.release();
    await this.blocked.release();
  }
}
