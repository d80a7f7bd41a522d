import { InternalError } from "../errors.js";
import type { Dtype } from "./safetensors.js";
import type { WeightSource } from "./weight-source.js";

/**
 * A weight source with no weights that records what a network builder declares (`ScopedWeights.expect`): run a
 * builder against it and `shapes` lists every parameter of the architecture with its shape, in diffusers names.
 * That list checks checkpoints (missing, extra or misshapen tensors) and makes random weights for benchmarks,
 * without a second description of the architecture beside its builder.
 */
export class ShapeRecorder implements WeightSource {
  readonly origin = "the architecture";
  readonly shapes = new Map<string, readonly number[]>();

  record(name: string, shape: readonly number[]): void {
    const before = this.shapes.get(name);
    if (before && (before.length !== shape.length || before.some((d, i) => d !== shape[i]))) {
      throw new InternalError(`builder declares "${name}" twice, as [${before.join(",")}] and [${shape.join(",")}]`);
    }
    this.shapes.set(name, [...shape]);
  }

  keys(): string[] {
    return [...this.shapes.keys()];
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  shape(name: string): readonly number[] {
    const s = this.shapes.get(name);
    if (!s) throw new InternalError(`builder asked for the shape of "${name}" before declaring it`);
    return s;
  }

  dtype(): Dtype {
    return "F32";
  }

  /** Zeros: a recorded graph is never serialized for use, but this keeps a stray read harmless. */
  float32(name: string): Float32Array {
    return new Float32Array(this.shape(name).reduce((a, b) => a * b, 1));
  }
}
