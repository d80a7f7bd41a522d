import { InternalError } from "../errors.js";
import type { WeightLayout } from "../onnx/graph.js";
import type { WeightDelta } from "../weights/lora-delta.js";
import { reorderFilter } from "./nchwc-layout.js";
import type { TensorPatch } from "./weight-patch.js";

/**
 * The patch that makes a change given in the checkpoint's layout (weights/lora-delta.ts) to the tensor as the graph
 * stores it (`layout`). A low-rank change stays a product of two small factors whatever the layout: transposing W
 * transposes and swaps them, and onnxruntime's blocked filter layouts (see nchwc-layout.ts) are, for fixed output
 * and input blocks and kernel position, a block x block tile indexed [input][output], which is a batched product of
 * a rearranged `down` and `up`. So the stored tensor is never permuted back and forth, and the product is computed
 * right into place. A dense change is permuted as the weight was.
 */
export function patchForLayout(
  delta: WeightDelta,
  dims: readonly number[],
  layout: WeightLayout,
  what: string,
): TensorPatch {
  const out = dims[0]!;
  const total = dims.reduce((a, b) => a * b, 1);
  const rest = total / out; // in * kh * kw
  const kernel = dims.length === 4 ? dims[2]! * dims[3]! : 1;
  const inputs = rest / kernel;
  // A transposed weight is a linear layer's [out, in], or a 1x1 filter [out, in, 1, 1] taken as one (layers.ts).
  if (layout.kind === "transposed" && !(dims.length === 2 || (dims.length === 4 && kernel === 1)))
    throw new InternalError(`${what}: a transposed weight of shape [${dims.join(",")}]`);
  if (layout.kind === "blocked" && (dims.length !== 4 || out % layout.block !== 0))
    throw new InternalError(`${what}: a blocked filter of shape [${dims.join(",")}]`);
  if (delta.kind === "dense") {
    if (delta.delta.length !== total)
      throw new InternalError(`${what}: a delta of ${delta.delta.length} values for a [${dims.join(",")}] weight`);
    const scaled = delta.scale === 1 ? delta.delta : delta.delta.map((v) => v * delta.scale);
    switch (layout.kind) {
      case "as-is":
        return { kind: "dense", delta: scaled };
      case "transposed":
        return { kind: "dense", delta: transpose(scaled, out, inputs) };
      case "blocked":
        return { kind: "dense", delta: reorderFilter(scaled, dims, layout.block, layout.filter) };
    }
  }
  const { up, down, rank: r, scale } = delta;
  if (up.length !== out * r || down.length !== r * rest)
    throw new InternalError(
      `${what}: factors [${out}x${r}] and [${r}x${rest}] do not hold ${up.length} and ${down.length} values`,
    );
  switch (layout.kind) {
    case "as-is":
      return { kind: "product", a: up.map((v) => v * scale), b: down, m: out, r, n: rest };
    case "transposed":
      // Wᵀ [in, out] += (down)ᵀ (up)ᵀ
      return {
        kind: "product",
        a: transpose(down, r, rest).map((v) => v * scale),
        b: transpose(up, out, r),
        m: rest,
        r,
        n: out,
      };
    case "blocked": {
      // Per output block, rows of [block] outputs: the product's columns are (upᵀ) in output order, and its rows the
      // input positions in the order the layout walks them. OIHWBo: input channel ic at kernel position s is row
      // ic * k + s, i.e. downᵀ. OIHWBiBo: input blocks of `block` channels, row (ib * k + s) * block + icl.
      const block = layout.block;
      const b = transpose(up, out, r).map((v) => v * scale);
      if (layout.filter === "OIHWBo")
        return { kind: "product", a: transpose(down, r, rest), b, m: rest, r, n: out, block };
      if (inputs % block !== 0) throw new InternalError(`${what}: ${inputs} input channels in blocks of ${block}`);
      const a = new Float32Array(rest * r);
      const inBlocks = inputs / block;
      for (let ib = 0; ib < inBlocks; ib++) {
        for (let s = 0; s < kernel; s++) {
          for (let icl = 0; icl < block; icl++) {
            const row = ((ib * kernel + s) * block + icl) * r;
            const col = (ib * block + icl) * kernel + s;
            for (let j = 0; j < r; j++) a[row + j] = down[j * rest + col]!;
          }
        }
      }
      return { kind: "product", a, b, m: rest, r, n: out, block };
    }
  }
}

/** A row-major [rows, cols] matrix as [cols, rows]. */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(data.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = data[i * cols + j]!;
  return t;
}
