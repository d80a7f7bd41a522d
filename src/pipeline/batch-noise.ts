import { TorchGenerator } from "../random/torch-generator.js";
import type { NoiseSource } from "../schedulers/scheduler.js";

/**
 * One generator per image, as AUTOMATIC1111 does: image j of a batch draws its initial noise and every later
 * noise from its own seed, so any image can be reproduced alone from its seed whatever the batch size. A draw
 * for the whole batch is the concatenation of each image's draw of its share.
 */
export class BatchNoise implements NoiseSource {
  readonly generators: TorchGenerator[];

  constructor(readonly seeds: readonly bigint[]) {
    this.generators = seeds.map((s) => new TorchGenerator(s));
  }

  /** `shape` is the batch's shape; its first dimension must be the batch size. */
  randn(shape: readonly number[]): Float32Array {
    const total = shape.reduce((a, b) => a * b, 1);
    const per = total / this.generators.length;
    const out = new Float32Array(total);
    const perShape = shape.length > 1 && shape[0] === this.generators.length ? [1, ...shape.slice(1)] : [per];
    this.generators.forEach((g, i) => out.set(g.randn(perShape), i * per));
    return out;
  }
}

/** The seeds of batch `batch` (0-based, of batchCount): image j of the whole generation takes first + j, exactly. */
export function batchSeeds(first: bigint, batchSize: number, batch: number): bigint[] {
  return Array.from({ length: batchSize }, (_, j) => first + BigInt(batch * batchSize + j));
}
