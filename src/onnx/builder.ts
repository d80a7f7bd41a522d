import { InternalError } from "../errors.js";
import { assertShape, broadcast, DataType, Graph, MS_DOMAIN, numel, type Value } from "./graph.js";

/** How attention is expressed in the graph: plain MatMul-Softmax-MatMul, or onnxruntime's fused CPU kernel. */
export type AttentionKind = "matmul" | "ms-mha";

/**
 * Typed ONNX ops with build-time shape checks. Shapes in comments are nominal: the graph itself stays
 * dynamic in batch and spatial sizes.
 */
export class GraphBuilder extends Graph {
  // ---- elementwise ----
  add(a: Value, b: Value): Value {
    return this.op("Add", [a, b], broadcast(a.shape, b.shape, "Add"));
  }
  sub(a: Value, b: Value): Value {
    return this.op("Sub", [a, b], broadcast(a.shape, b.shape, "Sub"));
  }
  mul(a: Value, b: Value): Value {
    return this.op("Mul", [a, b], broadcast(a.shape, b.shape, "Mul"));
  }
  div(a: Value, b: Value): Value {
    return this.op("Div", [a, b], broadcast(a.shape, b.shape, "Div"));
  }
  unary(opType: "Sigmoid" | "Sin" | "Cos" | "Exp" | "Erf" | "Tanh" | "Sqrt" | "Neg" | "Relu", x: Value): Value {
    return this.op(opType, [x], x.shape);
  }
  scalar(value: number): Value {
    return this.constant([value], []);
  }
  relu(x: Value): Value {
    return this.unary("Relu", x);
  }
  /** x * sigmoid(x), PyTorch's SiLU (ORT fuses the pair). */
  silu(x: Value): Value {
    return this.mul(x, this.unary("Sigmoid", x));
  }
  /** x * sigmoid(1.702 x), CLIP's quick_gelu. */
  quickGelu(x: Value): Value {
    return this.mul(x, this.unary("Sigmoid", this.mul(x, this.scalar(1.702))));
  }
  /** Exact (erf) GELU: 0.5 x (1 + erf(x / sqrt 2)); ORT fuses the pattern into one kernel. */
  gelu(x: Value): Value {
    const erf = this.unary("Erf", this.div(x, this.scalar(Math.SQRT2)));
    return this.mul(this.mul(x, this.add(erf, this.scalar(1))), this.scalar(0.5));
  }

  // ---- shapes ----
  /** Reshape with ONNX semantics (0 copies the input's dim, -1 is inferred), checked against the nominal shape. */
  reshape(x: Value, shape: readonly number[]): Value {
    const out = shape.map((d, i) => (d === 0 ? x.shape[i]! : d));
    const known = out.filter((d) => d !== -1);
    if (out.filter((d) => d === -1).length > 1)
      throw new InternalError(`Reshape of ${x.name}: more than one -1 in [${shape.join(",")}]`);
    const inferred = out.map((d) => (d === -1 ? numel(x.shape) / numel(known) : d));
    if (numel(inferred) !== numel(x.shape) || inferred.some((d) => !Number.isInteger(d))) {
      throw new InternalError(`Reshape of ${x.name} [${x.shape.join(",")}] to [${shape.join(",")}]: sizes differ`);
    }
    return this.op("Reshape", [x, this.int64s([...shape])], inferred);
  }
  /** Reshape `x` to the runtime shape of `like` (keeps dynamic sizes dynamic). */
  reshapeLike(x: Value, like: Value): Value {
    if (numel(x.shape) !== numel(like.shape))
      throw new InternalError(`reshapeLike: ${x.name} and ${like.name} differ in size`);
    const shape = this.op("Shape", [like], [like.shape.length], {}, { dtype: DataType.INT64 });
    return this.op("Reshape", [x, shape], like.shape);
  }
  transpose(x: Value, perm: readonly number[]): Value {
    return this.op(
      "Transpose",
      [x],
      perm.map((p) => x.shape[p]!),
      { perm: [...perm] },
    );
  }
  concat(xs: readonly Value[], axis: number): Value {
    const rank = xs[0]!.shape.length;
    const ax = axis < 0 ? axis + rank : axis;
    const shape = [...xs[0]!.shape];
    shape[ax] = xs.reduce((s, v) => s + v.shape[ax]!, 0);
    for (const v of xs)
      assertShape(
        v,
        shape.map((d, i) => (i === ax ? -1 : d)),
        "Concat",
      );
    return this.op("Concat", xs, shape, { axis });
  }
  /** Splits along `axis` into the given sizes. */
  split(x: Value, axis: number, sizes: readonly number[]): Value[] {
    const ax = axis < 0 ? axis + x.shape.length : axis;
    if (sizes.reduce((a, b) => a + b, 0) !== x.shape[ax])
      throw new InternalError(`Split of ${x.name}: sizes ${sizes} do not sum to ${x.shape[ax]}`);
    const shapes = sizes.map((s) => x.shape.map((d, i) => (i === ax ? s : d)));
    return this.node("Split", [x, this.int64s([...sizes])], { axis }, { shapes });
  }
  unsqueeze(x: Value, axes: readonly number[]): Value {
    const shape = [...x.shape];
    for (const a of [...axes].sort((p, q) => p - q)) shape.splice(a < 0 ? a + shape.length + 1 : a, 0, 1);
    return this.op("Unsqueeze", [x, this.int64s([...axes])], shape);
  }
  gather(data: Value, indices: Value, axis = 0): Value {
    const shape = [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)];
    return this.op("Gather", [data, indices], shape, { axis }, { dtype: data.dtype });
  }
  /** Slice along one axis [start, end). */
  slice(x: Value, axis: number, start: number, end: number): Value {
    const shape = [...x.shape];
    const ax = axis < 0 ? axis + shape.length : axis;
    shape[ax] = Math.min(end, shape[ax]!) - start;
    return this.op("Slice", [x, this.int64s([start]), this.int64s([end]), this.int64s([axis])], shape);
  }

  // ---- linear algebra ----
  matmul(a: Value, b: Value): Value {
    const [m, k] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (k !== k2) throw new InternalError(`MatMul ${a.name} [${a.shape}] x ${b.name} [${b.shape}]: inner sizes differ`);
    const batch = broadcast(a.shape.slice(0, -2), b.shape.slice(0, -2), "MatMul");
    return this.op("MatMul", [a, b], [...batch, m!, n!]);
  }
  conv2d(
    x: Value,
    weight: Value,
    bias: Value | undefined,
    opts: { stride?: number; pads?: [number, number, number, number] } = {},
  ): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const [o, ci, kh, kw] = weight.shape as [number, number, number, number];
    if (ci !== c) throw new InternalError(`Conv ${weight.name}: input has ${c} channels, weight expects ${ci}`);
    const stride = opts.stride ?? 1;
    const pads = opts.pads ?? [Math.floor(kh / 2), Math.floor(kw / 2), Math.floor(kh / 2), Math.floor(kw / 2)];
    const oh = Math.floor((h + pads[0] + pads[2] - kh) / stride) + 1;
    const ow = Math.floor((w + pads[1] + pads[3] - kw) / stride) + 1;
    return this.op("Conv", bias ? [x, weight, bias] : [x, weight], [n, o, oh, ow], {
      kernel_shape: [kh, kw],
      strides: [stride, stride],
      pads: [...pads],
    });
  }
  softmax(x: Value, axis = -1): Value {
    return this.op("Softmax", [x], x.shape, { axis });
  }

  // ---- normalization ----
  /** LayerNormalization over the last axis (opset 17). */
  layerNorm(x: Value, scale: Value, bias: Value, eps: number): Value {
    return this.op("LayerNormalization", [x, scale, bias], x.shape, { axis: -1, epsilon: { float: eps } });
  }
  /**
   * GroupNorm as PyTorch computes it: InstanceNormalization over [N, groups, C/groups*H*W] (ORT has no CPU
   * GroupNormalization kernel for the opsets we target), then the per-channel affine.
   */
  groupNorm(x: Value, scale: Value, bias: Value, groups: number, eps: number): Value {
    const c = x.shape[1]!;
    if (c % groups !== 0) throw new InternalError(`GroupNorm: ${c} channels not divisible by ${groups} groups`);
    const grouped = this.reshape(x, [0, groups, -1]);
    const ones = this.constant(new Float32Array(groups).fill(1), [groups]);
    const zeros = this.constant(new Float32Array(groups), [groups]);
    const normed = this.op("InstanceNormalization", [grouped, ones, zeros], grouped.shape, { epsilon: { float: eps } });
    const back = this.reshapeLike(normed, x);
    const rest = x.shape.slice(2).map(() => 1);
    return this.add(this.mul(back, this.reshape(scale, [c, ...rest])), this.reshape(bias, [c, ...rest]));
  }

  // ---- resampling ----
  /**
   * torch's F.pixel_unshuffle: [N, C, H, W] -> [N, C*r*r, H/r, W/r], output channel c*r*r + i*r + j holding the
   * pixels at row offset i, column offset j. ONNX's SpaceToDepth orders the channels offset-major ((i*r + j)*C + c),
   * so for several input channels they are regrouped (a reshape and transpose of the small unshuffled tensor).
   */
  pixelUnshuffle(x: Value, r: number): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    if (h % r !== 0 || w % r !== 0) throw new InternalError(`pixelUnshuffle: ${h}x${w} is not divisible by ${r}`);
    const s2d = this.op("SpaceToDepth", [x], [n, c * r * r, h / r, w / r], { blocksize: r });
    if (c === 1) return s2d;
    return this.reshapeLike(this.transpose(this.reshape(s2d, [0, r * r, c, -1]), [0, 2, 1, 3]), s2d);
  }

  /**
   * torch's AvgPool2d(kernel 2, stride 2, ceil_mode=True): an odd size rounds up, and the window hanging over the
   * edge averages only the pixels inside (no padding is counted), as torch divides with padding 0.
   */
  avgPool2x(x: Value): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    return this.op("AveragePool", [x], [n, c, Math.ceil(h / 2), Math.ceil(w / 2)], {
      kernel_shape: [2, 2],
      strides: [2, 2],
      ceil_mode: 1,
      count_include_pad: 0,
    });
  }

  /** Nearest-neighbour 2x upsampling, identical to torch's F.interpolate(scale_factor=2, mode="nearest"). */
  upsampleNearest2x(x: Value): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const scales = this.constant([1, 1, 2, 2], [4]);
    return this.op("Resize", [x, undefined, scales], [n, c, h * 2, w * 2], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  }

  /**
   * Nearest-neighbour resize of x [N, C, h, w] to the spatial size of `like` [*, *, H, W], read at run time:
   * torch's F.interpolate(size=(H, W), mode="nearest") (source index floor(i * h / H)). diffusers' UNet upsamples
   * this way to the size of the skip connection it concatenates next, so odd latent sizes line up.
   */
  resizeNearestLike(x: Value, like: Value): Value {
    const [n, c] = x.shape as [number, number];
    const [, , h, w] = like.shape as [number, number, number, number];
    const batchChannels = this.op("Shape", [x], [2], { start: 0, end: 2 }, { dtype: DataType.INT64 });
    const size = this.op("Shape", [like], [2], { start: 2, end: 4 }, { dtype: DataType.INT64 });
    const sizes = this.op("Concat", [batchChannels, size], [4], { axis: 0 }, { dtype: DataType.INT64 });
    return this.op("Resize", [x, undefined, undefined, sizes], [n, c, h, w], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  }

  // ---- attention ----
  /**
   * Multi-head scaled dot-product attention. q: [B, Lq, H*D], k/v: [B, Lk, H*D] -> [B, Lq, H*D].
   * `mask` (optional, additive, broadcastable to [B, H, Lq, Lk]) is only supported by the matmul form.
   */
  attention(q: Value, k: Value, v: Value, heads: number, opts: { kind?: AttentionKind; mask?: Value } = {}): Value {
    const [b, lq, inner] = q.shape as [number, number, number];
    const lk = k.shape[1]!;
    if (inner % heads !== 0) throw new InternalError(`attention: ${inner} features not divisible by ${heads} heads`);
    const d = inner / heads;
    assertShape(k, [b, lk, inner], "attention k");
    assertShape(v, [b, lk, inner], "attention v");
    if ((opts.kind ?? "matmul") === "ms-mha" && !opts.mask) {
      return this.op(
        "MultiHeadAttention",
        [q, k, v],
        [b, lq, inner],
        { num_heads: heads, scale: { float: 1 / Math.sqrt(d) } },
        { domain: MS_DOMAIN },
      );
    }
    const qh = this.transpose(this.reshape(q, [0, 0, heads, d]), [0, 2, 1, 3]); // [B,H,Lq,D]
    const kt = this.transpose(this.reshape(k, [0, 0, heads, d]), [0, 2, 3, 1]); // [B,H,D,Lk]
    const vh = this.transpose(this.reshape(v, [0, 0, heads, d]), [0, 2, 1, 3]); // [B,H,Lk,D]
    // Scaling q before the product (not the scores after) costs Lq*D multiplies instead of Lq*Lk.
    let scores = this.matmul(this.mul(qh, this.scalar(1 / Math.sqrt(d))), kt); // [B,H,Lq,Lk]
    if (opts.mask) scores = this.add(scores, opts.mask);
    const out = this.matmul(this.softmax(scores, -1), vh); // [B,H,Lq,D]
    return this.reshape(this.transpose(out, [0, 2, 1, 3]), [0, 0, inner]);
  }
}
