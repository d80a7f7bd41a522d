import { CheckpointError } from "../errors.js";
import type { Dtype } from "./safetensors.js";

/**
 * A lazy map of one network's tensors under diffusers names ("down_blocks.0.resnets.0.conv1.weight"),
 * whatever the file layout they came from. Tensors are read (and converted to fp32) only when asked for.
 */
export interface WeightSource {
  /** Where the weights come from, for error messages. */
  readonly origin: string;
  keys(): string[];
  has(name: string): boolean;
  shape(name: string): readonly number[];
  /** The dtype as stored in the file (F16, BF16, F32). */
  dtype(name: string): Dtype;
  /**
   * The tensor as fp32: a fresh array, or `into` (exactly the tensor's size) filled and returned, which spares a
   * caller that reuses its buffers the cost of fresh memory.
   */
  float32(name: string, into?: Float32Array): Float32Array;
  /**
   * Present on a shape recorder only (see shape-recorder.ts): takes each parameter a network builder declares,
   * so that running a builder lists the parameters of its architecture.
   */
  record?(name: string, shape: readonly number[]): void;
}

/**
 * A view of a WeightSource under a prefix, mirroring the module tree of the reference:
 * `w.sub("down_blocks.0").sub("resnets.1").get("conv1.weight")`.
 */
export class ScopedWeights {
  constructor(
    readonly source: WeightSource,
    readonly prefix: string = "",
  ) {}

  sub(name: string | number): ScopedWeights {
    return new ScopedWeights(this.source, this.path(String(name)));
  }

  path(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  has(name: string): boolean {
    return this.source.has(this.path(name));
  }

  /**
   * Declares a parameter of the architecture with its full shape. A checkpoint must hold it with exactly that
   * shape (CheckpointError naming the key and both shapes otherwise); a shape recorder records it. Builders
   * declare every parameter this way, so each architecture is written once: the builder is also the list of
   * what a checkpoint must contain.
   */
  expect(name: string, shape: readonly number[]): void {
    const full = this.path(name);
    if (this.source.record) {
      this.source.record(full, shape);
      return;
    }
    const actual = this.shape(name);
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${this.source.origin}: "${full}" has shape [${actual.join(",")}], expected [${shape.join(",")}]; the checkpoint does not match the detected architecture`,
      );
    }
  }

  shape(name: string): readonly number[] {
    const full = this.path(name);
    if (!this.source.has(full))
      throw new CheckpointError(
        `${this.source.origin}: missing tensor "${full}"; the checkpoint is incomplete or of another architecture`,
      );
    return this.source.shape(full);
  }

  /** Reads a tensor as fp32 (into `into` when given), checking its shape when `expected` is given (-1 matches any size). */
  get(name: string, expected?: readonly number[], into?: Float32Array): Float32Array {
    const full = this.path(name);
    const shape = this.shape(name);
    if (expected && (expected.length !== shape.length || expected.some((d, i) => d !== -1 && d !== shape[i]))) {
      throw new CheckpointError(
        `${this.source.origin}: "${full}" has shape [${shape.join(",")}], expected [${expected.join(",")}]; the checkpoint does not match the detected architecture`,
      );
    }
    return this.source.float32(full, into);
  }
}
