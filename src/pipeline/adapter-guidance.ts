import { intrablockResidualName } from "../models/unet-blocks.js";
import type { FeedValue } from "../runtime/session.js";
import { ControlGuidance } from "./control-guidance.js";

/** One T2I-Adapter of a generation: its feature maps already times its weight, and when they act. */
export interface AdapterUnitRun {
  /** [1, C, h, w] each, in the order of the UNet's intrablock residuals (unet-blocks.ts intrablockShapes). */
  features: readonly Float32Array[];
  /** The fractions of the model calls between which it acts (guidance start and end). */
  start: number;
  end: number;
}

/**
 * T2I-Adapters applied in the denoising loop: their features, computed once per generation, are the UNet's
 * intrablock residuals at every model call where they act (the same rule as ControlNets': ControlGuidance.active);
 * the features of several adapters active at once are summed (diffusers' MultiAdapter with weights), and a call where
 * none acts gets zeros: no residual. Batch 1: the UNet broadcasts them over the images and both guidance halves.
 */
export class AdapterGuidance {
  /** The feeds of each set of active adapters seen so far (a generation sees a few: the sets change at boundaries). */
  private readonly sums = new Map<string, Record<string, FeedValue>>();

  /** `shapes`: the residuals' shapes [C, h, w] for the latent size (intrablockShapes); missing features are zeros. */
  constructor(
    private readonly units: readonly AdapterUnitRun[],
    private readonly shapes: readonly (readonly [number, number, number])[],
  ) {}

  /** The intrablock residual feeds of model call `i` of `n`. */
  residuals(i: number, n: number): Record<string, FeedValue> {
    const active = this.units.filter((u) => ControlGuidance.active(i, n, u.start, u.end));
    const key = active.map((u) => this.units.indexOf(u)).join(",");
    let feeds = this.sums.get(key);
    if (!feeds) {
      feeds = {};
      this.shapes.forEach(([c, h, w], k) => {
        const sum = new Float32Array(c * h * w);
        for (const u of active) {
          const f = u.features[k];
          if (f) for (let j = 0; j < sum.length; j++) sum[j]! += f[j]!;
        }
        feeds![intrablockResidualName(k)] = { data: sum, dims: [1, c, h, w] };
      });
      this.sums.set(key, feeds);
    }
    return feeds;
  }
}
