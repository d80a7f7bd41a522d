import { InternalError } from "../errors.js";
import { assertShape, broadcast, DataType, Graph, MS_DOMAIN, numel, type Value } from "./graph.js";

/** Resize attributes of torch's nearest interpolation (source index floor(i * in / out)). */
const NEAREST_FLOOR = { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" };

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
    return this.op("Resize", [x, undefined, scales], [n, c, h * 2, w * 2], NEAREST_FLOOR);
  }

  /**
   * A 3x3 convolution (padding 1) of x upsampled 2x by nearest neighbour, computed at x's resolution: each output
   * pixel of parity (a, b) sees only two input rows and two input columns, so the convolution is four 2x2 ones on x,
   * whose taps are sums of the 3x3 taps (rows of parity 0 read rows i-1 and i with taps w0 and w1+w2, parity 1 rows
   * i and i+1 with w0+w1 and w2; columns alike), their outputs interleaved by DepthToSpace. 16 multiply-adds per
   * output value instead of 36, and the upsampled input is never made. The 2x2 filters are computed in the graph
   * from `weight` (onnxruntime folds them once at load), so the stored weight is the checkpoint's 3x3 filter: a LoRA
   * merged into it reaches them, and a cache entry holds no more weights than before.
   *
   * `like`: upsample to its spatial size instead (torch's F.interpolate(size=...): the UNet's skip connection), which must be 2h
   * or 2h-1 for an input of h (what a stride-2 padding-1 convolution reverses). An odd size drops the last row or
   * column of the 2x result, but the convolution then reads padding where the 2x map has a copy of the last input
   * row: that last output row (column) is computed apart, as the plain convolution of the cropped upsampled map
   * (from x's last two rows), and takes the place of the 2x result's. At an even size those parts are empty.
   */
  upsampleConv3x3(x: Value, weight: Value, bias: Value | undefined, like?: Value): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const [o, ci, kh, kw] = weight.shape as [number, number, number, number];
    if (ci !== c || kh !== 3 || kw !== 3)
      throw new InternalError(
        `upsampleConv3x3 ${weight.name}: expected a [*, ${c}, 3, 3] filter, got [${weight.shape}]`,
      );
    const [outH, outW] = like ? [like.shape[2]!, like.shape[3]!] : [2 * h, 2 * w];
    if ((outH !== 2 * h && outH !== 2 * h - 1) || (outW !== 2 * w && outW !== 2 * w - 1))
      throw new InternalError(
        `upsampleConv3x3: ${h}x${w} cannot be upsampled to ${outH}x${outW}, only to 2x (or 1 less)`,
      );
    // Each parity's 2x2 filter as one product of the 9 taps with a 0/1 matrix: onnxruntime folds a MatMul of 9-tap rows
    // in well under a second for the SD1.5 UNet, where slicing and adding taps (runs of 1-3 values) took 20 s a filter.
    const taps = this.reshape(weight, [-1, 9]);
    const parities = [0, 1, 2, 3].map((p) =>
      this.reshape(this.matmul(taps, this.constant(parityTaps(p >> 1, p & 1), [9, 4])), [o, c, 2, 2]),
    );
    const parts = parities.map((k, p) => {
      const [a, b] = [p >> 1, p & 1];
      return this.conv2d(x, k, bias, { pads: [1 - a, 1 - b, a, b] });
    });
    const full = this.op("DepthToSpace", [this.concat(parts, 1)], [n, o, 2 * h, 2 * w], { blocksize: 2, mode: "DCR" });
    return like ? this.oddEdges(full, x, weight, bias, like) : full;
  }

  /**
   * upsampleConv3x3's result at `like`'s size (2h or 2h-1 each way) from its 2x result `full`: cropped, with the
   * last row of an odd height and the last column of an odd width in place of the 2x result's, computed as the plain
   * convolution of the cropped upsampled map there. The graph serves every size, so those edges are always computed:
   * where a side is even, from one input line of length 1 (a convolution may not be empty), then sliced to nothing.
   */
  private oddEdges(full: Value, x: Value, weight: Value, bias: Value | undefined, like: Value): Value {
    const [n, o] = full.shape as [number, number];
    const [, c, h, w] = x.shape as [number, number, number, number];
    const [, , outH, outW] = like.shape as [number, number, number, number];
    const i64 = { dtype: DataType.INT64 };
    const dim = (v: Value, axis: number) => this.op("Shape", [v], [1], { start: axis, end: axis + 1 }, i64);
    const ints = (parts: Value[]) => this.op("Concat", parts, [parts.length], { axis: 0 }, i64);
    const arith = (op: "Add" | "Sub" | "Mul", a: Value, b: Value) => this.op(op, [a, b], [1], {}, i64);
    const [zero, one] = [this.int64s([0]), this.int64s([1])];
    const sliced = (v: Value, starts: Value[], ends: Value[], axes: number[], shape: readonly number[]) =>
      this.op("Slice", [v, ints(starts), ints(ends), this.int64s(axes)], shape);
    const [inH, inW, bigH, bigW] = [dim(x, 2), dim(x, 3), dim(like, 2), dim(like, 3)];
    // 1 where the target side is odd (2h-1), else 0; and the sides without their odd last line.
    const oddH = arith("Sub", arith("Add", inH, inH), bigH);
    const oddW = arith("Sub", arith("Add", inW, inW), bigW);
    const [keptH, keptW] = [arith("Sub", bigH, oddH), arith("Sub", bigW, oddW)];
    const nominal = { h: 2 * h - outH, w: 2 * w - outW };
    /**
     * The exact last output line across `axis` (2: a row, 3: a column), as long as the other side where this one is
     * odd, else 1 long: x's last two lines (the last alone when x has one: a start of -1 counts from the end),
     * upsampled along the other axis, convolved with padding, its last line.
     */
    const edge = (axis: 2 | 3): Value => {
      const [isOdd, size, otherSize, bigOther] = axis === 2 ? [oddH, inH, inW, bigW] : [oddW, inW, inH, bigH];
      const odd = axis === 2 ? nominal.h : nominal.w;
      const from = arith("Sub", arith("Sub", size, one), isOdd);
      const span = arith("Add", one, arith("Mul", isOdd, arith("Sub", otherSize, one)));
      const bigSpan = arith("Add", one, arith("Mul", isOdd, arith("Sub", bigOther, one)));
      const lineShape = axis === 2 ? [n, c, 1 + odd, odd ? w : 1] : [n, c, odd ? h : 1, 1 + odd];
      const lines = sliced(x, [from, zero], [size, span], [axis, axis === 2 ? 3 : 2], lineShape);
      const sizes = ints(
        axis === 2
          ? [dim(lines, 0), dim(lines, 1), dim(lines, 2), bigSpan]
          : [dim(lines, 0), dim(lines, 1), bigSpan, dim(lines, 3)],
      );
      const stretchedShape = axis === 2 ? [n, c, 1 + odd, odd ? outW : 1] : [n, c, odd ? outH : 1, 1 + odd];
      const stretched = this.op("Resize", [lines, undefined, undefined, sizes], stretchedShape, NEAREST_FLOOR);
      const conv = this.conv2d(stretched, weight, bias);
      return this.op(
        "Slice",
        [conv, this.int64s([-1]), this.int64s([2 ** 62]), this.int64s([axis])],
        conv.shape.map((d, i) => (i === axis ? 1 : d)),
      );
    };
    const inner = sliced(full, [zero, zero], [keptH, keptW], [2, 3], [n, o, outH - nominal.h, outW - nominal.w]);
    // The last column (none where the width is even), stretched to the kept rows when it is an empty stand-in.
    const column = this.op(
      "Expand",
      [
        sliced(edge(3), [zero, zero], [keptH, oddW], [2, 3], [n, o, outH - nominal.h, nominal.w]),
        ints([one, one, keptH, one]),
      ],
      [n, o, outH - nominal.h, nominal.w],
    );
    const row = this.op(
      "Expand",
      [sliced(edge(2), [zero], [oddH], [2], [n, o, nominal.h, nominal.h ? outW : 1]), ints([one, one, one, bigW])],
      [n, o, nominal.h, outW],
    );
    return this.concat([this.concat([inner, column], 3), row], 2);
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

/**
 * The 0/1 matrix [9, 4] that sums a 3x3 filter's taps (row-major) into the 2x2 filter of output parity (a, b) of
 * GraphBuilder.upsampleConv3x3: along each axis, parity 0 reads input lines i-1 and i with taps (w0, w1 + w2), parity 1
 * lines i and i+1 with (w0 + w1, w2).
 */
export function parityTaps(a: number, b: number): Float32Array {
  const lines = (parity: number) =>
    parity === 0
      ? [
          [1, 0, 0],
          [0, 1, 1],
        ]
      : [
          [1, 1, 0],
          [0, 0, 1],
        ];
  const [rows, cols] = [lines(a), lines(b)];
  const t = new Float32Array(9 * 4);
  for (let r = 0; r < 3; r++)
    for (let q = 0; q < 3; q++)
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++) t[(r * 3 + q) * 4 + i * 2 + j] = rows[i]![r]! * cols[j]![q]!;
  return t;
}
