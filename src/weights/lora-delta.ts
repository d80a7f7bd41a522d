import { CheckpointError, InputError, InternalError } from "../errors.js";
import type { LoraModuleKeys, LoraNetwork, LoraRole } from "./lora-keymap.js";
import type { TensorFile } from "./tensor-file.js";

/**
 * A change to a checkpoint weight W in W's own layout ([out, in] or [out, in, kh, kw]):
 * - "low-rank": W += scale * up @ down, up [out, rank] and down [rank, in * kh * kw] (a LoRA's factors, kept
 *   apart so that merging costs one product per weight);
 * - "dense": W += scale * delta, delta of W's size (LoHa, LoKr and full deltas, computed whole).
 */
export type WeightDelta =
  | {
      readonly kind: "low-rank";
      readonly up: Float32Array;
      readonly down: Float32Array;
      readonly rank: number;
      readonly scale: number;
    }
  | { readonly kind: "dense"; readonly delta: Float32Array; readonly scale: number };

/** One tensor's change from one module of a LoRA file, at multiplier 1. */
export interface TensorDelta {
  readonly network: LoraNetwork;
  /** The checkpoint tensor it changes ("...attn1.to_q.weight", or a ".bias"). */
  readonly key: string;
  /** The module as the file names it (for messages). */
  readonly name: string;
  readonly delta: WeightDelta;
}

/** Shapes of the model's tensors, by network and checkpoint name (undefined: no such tensor). */
export type ShapeOf = (network: LoraNetwork, key: string) => readonly number[] | undefined;

/**
 * Each module's change, as the formats define it (A1111's extensions-builtin/Lora network_*.py, LyCORIS):
 * - LoRA / LoCon: up @ down x alpha / rank, rank = down's first dimension (alpha absent: the rank, so scale 1);
 *   with lora_mid (LoCon's Tucker form), down is the mid kernel applied to the 1x1 down;
 * - LoHa: (w1a @ w1b) * (w2a @ w2b) x alpha / rank, rank = w1b's first dimension;
 * - LoKr: kron(w1, w2), each factor whole or as a @ b, x alpha / dim where dim is the decomposed factor's rank
 *   (w2's when both are), and x 1 when neither is decomposed (alpha is then ignored, as A1111 and ComfyUI do);
 * - full: diff (and diff_b for the bias) as they are.
 * A module whose factors do not fit the model's tensor is refused with both shapes; the one exception is an
 * inpainting model's 9-channel conv_in under a LoRA made for 4 channels, whose extra inputs get no change.
 */
export function moduleDeltas(file: TensorFile, m: LoraModuleKeys, shapeOf: ShapeOf): TensorDelta[] {
  const has = (r: LoraRole) => m.tensors.has(r);
  const where = `${file.path}: module "${m.name}"`;
  const unsupported = (what: string) =>
    new InputError(`${where} uses ${what}, which diffuse cannot merge yet; use a LoRA without it`);
  if (has("dora_scale")) throw unsupported("DoRA (dora_scale: a per-channel norm of the merged weight)");
  if (has("hada_t1") || has("hada_t2")) throw unsupported("LoHa's Tucker form (hada_t1/hada_t2)");
  if (has("lokr_t2")) throw unsupported("LoKr's Tucker form (lokr_t2)");
  const weightKey = `${m.module}.weight`;
  const shape = shapeOf(m.network, weightKey);
  if (!shape) throw new InternalError(`${where}: no tensor ${weightKey} in the model`);
  const get = (r: LoraRole) => tensor(file, m.tensors.get(r)!);
  const alpha = has("alpha") ? scalar(file, m.tensors.get("alpha")!, where) : undefined;
  const out: TensorDelta[] = [];
  const push = (key: string, delta: WeightDelta) => out.push({ network: m.network, key, name: m.name, delta });

  if (has("down") || has("up")) {
    if (!has("down") || !has("up"))
      throw new CheckpointError(
        `${where} has a ${has("down") ? "down" : "up"} factor but no ${has("down") ? "up" : "down"} factor; the file is incomplete`,
      );
    const up = get("up");
    let down = get("down");
    const rank = down.shape[0]!;
    if (up.shape[1] !== rank || up.shape.slice(2).some((d) => d !== 1)) {
      throw new CheckpointError(
        `${where}: the up factor has shape [${up.shape.join(",")}] and the down factor [${down.shape.join(",")}]; up must be [out, ${rank}] (or [out, ${rank}, 1, 1])`,
      );
    }
    if (has("mid")) down = tuckerDown(get("mid"), down, where);
    down = fitInputs(down, shape, m.module);
    checkFits(where, shape, up.shape[0]!, down.shape, `up [${up.shape.join(",")}] @ down [${down.shape.join(",")}]`);
    push(weightKey, { kind: "low-rank", up: up.data, down: down.data, rank, scale: (alpha ?? rank) / rank });
  } else if (has("hada_w1_a")) {
    for (const r of ["hada_w1_b", "hada_w2_a", "hada_w2_b"] as const)
      if (!has(r)) throw new CheckpointError(`${where} is a LoHa without ${r}; the file is incomplete`);
    const [w1a, w1b, w2a, w2b] = [get("hada_w1_a"), get("hada_w1_b"), get("hada_w2_a"), get("hada_w2_b")];
    const p1 = product(w1a, w1b, where);
    const p2 = product(w2a, w2b, where);
    if (p1.rows !== p2.rows || p1.cols !== p2.cols)
      throw new CheckpointError(
        `${where}: the LoHa products are [${p1.rows},${p1.cols}] and [${p2.rows},${p2.cols}]; they must be equal`,
      );
    checkFits(where, shape, p1.rows, [p1.cols], `(w1a @ w1b) [${p1.rows},${p1.cols}]`);
    const delta = p1.data.map((v, i) => v * p2.data[i]!);
    const rank = w1b.shape[0]!;
    push(weightKey, { kind: "dense", delta, scale: alpha === undefined ? 1 : alpha / rank });
  } else if (has("lokr_w1") || has("lokr_w1_a")) {
    const w1 = has("lokr_w1") ? asMatrix(get("lokr_w1")) : productTensor(get("lokr_w1_a"), get("lokr_w1_b"), where);
    const w2 = has("lokr_w2") ? get("lokr_w2") : productTensor(get("lokr_w2_a"), get("lokr_w2_b"), where);
    const dim = !has("lokr_w2")
      ? file.info(m.tensors.get("lokr_w2_b")!).shape[0]!
      : !has("lokr_w1")
        ? file.info(m.tensors.get("lokr_w1_b")!).shape[0]!
        : undefined;
    const delta = kron(w1, w2);
    if (delta.length !== numel(shape))
      throw new CheckpointError(
        `${where}: kron(w1 [${w1.shape.join(",")}], w2 [${w2.shape.join(",")}]) has ${delta.length} values; the model's ${m.module} has [${shape.join(",")}]`,
      );
    push(weightKey, { kind: "dense", delta, scale: dim !== undefined && alpha !== undefined ? alpha / dim : 1 });
  } else if (has("diff")) {
    const diff = get("diff");
    if (numel(diff.shape) !== numel(shape))
      throw new CheckpointError(
        `${where}: diff has shape [${diff.shape.join(",")}]; the model's ${m.module} has [${shape.join(",")}]`,
      );
    push(weightKey, { kind: "dense", delta: diff.data, scale: 1 });
  } else if (!has("diff_b")) {
    throw new CheckpointError(
      `${where} has only ${[...m.tensors.keys()].join(", ")}: no factors to merge; the file is incomplete`,
    );
  }
  if (has("diff_b")) {
    const biasKey = `${m.module}.bias`;
    const biasShape = shapeOf(m.network, biasKey);
    const diffB = get("diff_b");
    if (!biasShape || numel(biasShape) !== numel(diffB.shape))
      throw new CheckpointError(
        `${where}: diff_b has shape [${diffB.shape.join(",")}]; the model's ${m.module} has ${biasShape ? `a bias of [${biasShape.join(",")}]` : "no bias"}`,
      );
    push(biasKey, { kind: "dense", delta: diffB.data, scale: 1 });
  }
  return out;
}

interface Tensor {
  data: Float32Array;
  shape: readonly number[];
}

function tensor(file: TensorFile, key: string): Tensor {
  return { data: file.float32(key), shape: file.info(key).shape };
}

function scalar(file: TensorFile, key: string, where: string): number {
  const t = file.float32(key);
  if (t.length !== 1 || !Number.isFinite(t[0]!))
    throw new CheckpointError(`${where}: alpha should be one finite number, got ${t.length} values`);
  return t[0]!;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A [out, rank] @ [rank, rest] product's output rows must be the weight's rows, its columns the rest of its shape. */
function checkFits(
  where: string,
  weight: readonly number[],
  rows: number,
  downShape: readonly number[],
  what: string,
): void {
  const cols = numel(downShape) / (downShape.length > 1 ? downShape[0]! : 1);
  const rest = numel(weight) / weight[0]!;
  const kernelOk =
    downShape.length !== 4 || weight.length !== 4 || (downShape[2] === weight[2] && downShape[3] === weight[3]);
  if (rows !== weight[0] || cols !== rest || !kernelOk) {
    throw new CheckpointError(`${where}: ${what} does not fit the model's weight [${weight.join(",")}]`);
  }
}

/**
 * The down factor over the weight's inputs. An inpainting UNet's conv_in reads 9 channels (latents, mask, masked
 * image); a LoRA trained on the 4-channel model changes the first 4 and, as its factor is zero for the others, leaves
 * the mask and masked-image inputs as they are.
 */
function fitInputs(down: Tensor, weight: readonly number[], module: string): Tensor {
  if (module !== "conv_in" || weight.length !== 4 || down.shape.length !== 4 || down.shape[1]! >= weight[1]!)
    return down;
  const [rank, inputs, kh, kw] = down.shape as [number, number, number, number];
  const k = kh * kw;
  const wide = weight[1]!;
  const data = new Float32Array(rank * wide * k);
  for (let r = 0; r < rank; r++) data.set(down.data.subarray(r * inputs * k, (r + 1) * inputs * k), r * wide * k);
  return { data, shape: [rank, wide, kh, kw] };
}

/** LoCon's Tucker down: mid [rank, rank, kh, kw] applied to down [rank, in, 1, 1] gives [rank, in, kh, kw]. */
function tuckerDown(mid: Tensor, down: Tensor, where: string): Tensor {
  const [r1, r2, kh, kw] = mid.shape as [number, number, number, number];
  const rank = down.shape[0]!;
  const inputs = down.shape[1]!;
  if (mid.shape.length !== 4 || r2 !== rank || numel(down.shape) !== rank * inputs) {
    throw new CheckpointError(
      `${where}: lora_mid has shape [${mid.shape.join(",")}] and lora_down [${down.shape.join(",")}]; mid must be [rank, rank, kh, kw] over a 1x1 down`,
    );
  }
  const k = kh * kw;
  const data = new Float32Array(r1 * inputs * k);
  for (let a = 0; a < r1; a++) {
    for (let b = 0; b < rank; b++) {
      for (let i = 0; i < inputs; i++) {
        const d = down.data[b * inputs + i]!;
        if (d === 0) continue;
        for (let s = 0; s < k; s++) data[(a * inputs + i) * k + s]! += mid.data[(a * rank + b) * k + s]! * d;
      }
    }
  }
  return { data, shape: [r1, inputs, kh, kw] };
}

/** a [rows, inner] @ b [inner, ...] with b flattened to [inner, cols]. */
function product(a: Tensor, b: Tensor, where: string): { data: Float32Array; rows: number; cols: number } {
  const rows = a.shape[0]!;
  const inner = numel(a.shape) / rows;
  if (b.shape[0] !== inner)
    throw new CheckpointError(
      `${where}: factors of shapes [${a.shape.join(",")}] and [${b.shape.join(",")}] cannot be multiplied`,
    );
  const cols = numel(b.shape) / inner;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < inner; k++) {
      const x = a.data[i * inner + k]!;
      if (x === 0) continue;
      for (let j = 0; j < cols; j++) data[i * cols + j]! += x * b.data[k * cols + j]!;
    }
  }
  return { data, rows, cols };
}

function productTensor(a: Tensor, b: Tensor, where: string): Tensor {
  const p = product(a, b, where);
  return { data: p.data, shape: [p.rows, ...(b.shape.length > 2 ? b.shape.slice(1) : [p.cols])] };
}

function asMatrix(t: Tensor): Tensor {
  return t.shape.length === 2 ? t : { data: t.data, shape: [t.shape[0]!, numel(t.shape) / t.shape[0]!] };
}

/**
 * torch.kron of a matrix w1 [a, b] with w2 [c, d, ...]: [a*c, b*d, ...], entry ((i,k), (j,l), rest) = w1[i,j] * w2[k,l,rest]
 * (w1 taken as [a, b, 1, 1] against a 4-D w2, as A1111 does).
 */
function kron(w1: Tensor, w2: Tensor): Float32Array {
  const [a, b] = w1.shape as [number, number];
  const c = w2.shape[0]!;
  const d = w2.shape.length > 1 ? w2.shape[1]! : 1;
  const inner = numel(w2.shape) / (c * d);
  const out = new Float32Array(a * c * b * d * inner);
  const cols = b * d;
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      const x = w1.data[i * b + j]!;
      for (let k = 0; k < c; k++) {
        for (let l = 0; l < d; l++) {
          const to = ((i * c + k) * cols + (j * d + l)) * inner;
          const from = (k * d + l) * inner;
          for (let s = 0; s < inner; s++) out[to + s] = x * w2.data[from + s]!;
        }
      }
    }
  }
  return out;
}
