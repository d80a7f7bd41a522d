import { InternalError } from "../errors.js";
import { GraphBuilder } from "../onnx/builder.js";
import { DataType } from "../onnx/graph.js";
import { serializeGraph } from "../onnx/serialize.js";
import { Session, type SessionOptions } from "./session.js";

/**
 * An additive change to one fp32 weight tensor, in the layout the graph stores it (stored-layout.ts lowers a
 * change given in the checkpoint's layout):
 * - "product": the tensor, viewed as [batch, m, n], gets a @ b added, a [batchA, m, r] and b [batchB, r, n] with
 *   batchA and batchB 1 or batch (NumPy broadcasting). A low-rank update (a LoRA) stays this small until it is
 *   merged: r is its rank, and a blocked layout's permutation is folded into how a and b are laid out.
 * - "dense": the tensor gets `delta` (same length) added element by element.
 */
export type TensorPatch =
  | {
      readonly kind: "product";
      readonly a: Float32Array;
      readonly b: Float32Array;
      /** [batchA, m, r] and [batchB, r, n]. */
      readonly aDims: readonly [number, number, number];
      readonly bDims: readonly [number, number, number];
    }
  | { readonly kind: "dense"; readonly delta: Float32Array };

/** Patches by initializer name: every one of a tensor's patches is added to it. */
export type WeightPatches = ReadonlyMap<string, readonly TensorPatch[]>;

/** Elements of the tensor a patch applies to. */
export function patchLength(p: TensorPatch): number {
  if (p.kind === "dense") return p.delta.length;
  const [ba, m] = p.aDims;
  const [bb, , n] = p.bDims;
  return Math.max(ba, bb) * m * n;
}

const IO = { weight: "weight", a: "a", b: "b", out: "merged" } as const;

/**
 * Adds patches to weight tensors. Products run through onnxruntime (a small MatMul + Add graph with dynamic
 * shapes, opened once): merging a rank-32 LoRA into every attention and convolution of SD1.5 is about 55 GFLOP,
 * minutes in JavaScript loops and a few seconds at MLAS's speed. Dense patches are added in place.
 */
export class PatchApplier {
  private constructor(private readonly session: Session) {}

  static async create(opts: SessionOptions = {}): Promise<PatchApplier> {
    const g = new GraphBuilder("weight_patch");
    const w = g.input(IO.weight, DataType.FLOAT, ["batch", "m", "n"], [1, 1, 1]);
    const a = g.input(IO.a, DataType.FLOAT, ["batch_a", "m", "r"], [1, 1, 1]);
    const b = g.input(IO.b, DataType.FLOAT, ["batch_b", "r", "n"], [1, 1, 1]);
    g.output(g.add(w, g.matmul(a, b)), IO.out, ["batch", "m", "n"]);
    return new PatchApplier(await Session.create(serializeGraph(g), { threads: opts.threads, executionProviders: ["cpu"] }));
  }

  /** `weight` with every patch added: a new array when a product ran, else `weight` itself, changed in place. */
  async apply(weight: Float32Array, patches: readonly TensorPatch[], what: string): Promise<Float32Array> {
    let w = weight;
    for (const p of patches) {
      if (patchLength(p) !== w.length) throw new InternalError(`${what}: a patch of ${patchLength(p)} values for a tensor of ${w.length}`);
      if (p.kind === "dense") {
        for (let i = 0; i < w.length; i++) w[i]! += p.delta[i]!;
        continue;
      }
      const [ba, m, r] = p.aDims;
      const [bb, , n] = p.bDims;
      const batch = Math.max(ba, bb);
      const out = await this.session.run({
        [IO.weight]: { data: w, dims: [batch, m, n] },
        [IO.a]: { data: p.a, dims: [ba, m, r] },
        [IO.b]: { data: p.b, dims: [bb, r, n] },
      });
      w = out[IO.out]!.data;
    }
    return w;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
