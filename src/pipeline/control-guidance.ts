import { CONTROLNET_IO } from "../models/controlnet.js";
import { downResidualName, MID_RESIDUAL } from "../models/unet-blocks.js";
import type { FeedValue, RunResult, Session } from "../runtime/session.js";
import type { AdapterGuidance } from "./adapter-guidance.js";

/** One ControlNet of a generation, ready to run: its session, its control map and when it acts. */
export interface ControlUnitRun {
  session: Session;
  /** The conditioning embedding of the control map [1, C0, h, w] (ControlNetModel.hint): the graph broadcasts it over the batch. */
  hint: Float32Array;
  hintDims: readonly number[];
  /** The conditioning scale (A1111's weight). */
  scale: number;
  /** The fractions of the model calls between which it acts (guidance start and end). */
  start: number;
  end: number;
}

/**
 * ControlNets applied in the denoising loop: before each UNet call, every ControlNet active at that call runs on the
 * same latents, timestep and conditions (both classifier-free halves: guess mode off) with its control map, and the
 * residuals of all of them are summed (diffusers' MultiControlNetModel) and fed to the UNet variant that takes them.
 * At calls where none is active the residuals are zeros. T2I-Adapters (adapter-guidance.ts) add their residuals to
 * the same UNet call; a generation with adapters alone runs no ControlNet and feeds no ControlNet residuals.
 */
export class ControlGuidance {
  private zeros: Record<string, FeedValue> | undefined;

  /**
   * `unet` is the UNet that takes residuals; `shapes` the residuals' per-image shapes [C, h, w] for the latent size
   * (models/unet-blocks.ts residualShapes).
   */
  constructor(
    readonly unet: Session,
    private readonly units: readonly ControlUnitRun[],
    private readonly shapes: {
      down: readonly (readonly [number, number, number])[];
      mid: readonly [number, number, number];
    },
    private readonly adapters?: AdapterGuidance,
  ) {}

  /**
   * Whether a unit acts at model call `i` of `n`: diffusers' rule (StableDiffusionControlNetPipeline's
   * controlnet_keep): not while i/n is before the start, nor once (i+1)/n is past the end.
   */
  static active(i: number, n: number, start: number, end: number): boolean {
    return !(i / n < start || (i + 1) / n > end);
  }

  /** The residual feeds of model call `i` of `n`; `feeds` are the UNet's own (sample, timestep, conditions) for `copies` images. */
  async residuals(
    i: number,
    n: number,
    feeds: Record<string, FeedValue>,
    copies: number,
  ): Promise<Record<string, FeedValue>> {
    const adapted = this.adapters?.residuals(i, n) ?? {};
    return this.units.length === 0 ? adapted : { ...(await this.controlNetResiduals(i, n, feeds, copies)), ...adapted };
  }

  private async controlNetResiduals(
    i: number,
    n: number,
    feeds: Record<string, FeedValue>,
    copies: number,
  ): Promise<Record<string, FeedValue>> {
    let sum: Record<string, RunResult> | undefined;
    for (const unit of this.units) {
      // A unit at weight 0 adds nothing: it is not run.
      if (unit.scale === 0 || !ControlGuidance.active(i, n, unit.start, unit.end)) continue;
      const inputs: Record<string, FeedValue> = {};
      // The ControlNet takes the UNet's inputs but for those it has no use for (an LCM's guidance embedding).
      for (const name of unit.session.inputNames) if (feeds[name]) inputs[name] = feeds[name]!;
      inputs[CONTROLNET_IO.hint] = { data: unit.hint, dims: unit.hintDims };
      inputs[CONTROLNET_IO.scale] = { data: Float32Array.of(unit.scale), dims: [1] };
      const out = await unit.session.run(inputs);
      if (!sum) {
        sum = out;
        continue;
      }
      for (const [name, r] of Object.entries(out)) {
        const acc = sum[name]!.data;
        for (let k = 0; k < acc.length; k++) acc[k]! += r.data[k]!;
      }
    }
    if (!sum) return this.zeroResiduals(copies);
    return Object.fromEntries(Object.entries(sum).map(([name, r]) => [name, { data: r.data, dims: r.dims }]));
  }

  private zeroResiduals(copies: number): Record<string, FeedValue> {
    const current = this.zeros?.[MID_RESIDUAL]?.dims[0];
    if (this.zeros && current === copies) return this.zeros;
    const zero = (shape: readonly [number, number, number]): FeedValue => ({
      data: new Float32Array(copies * shape[0] * shape[1] * shape[2]),
      dims: [copies, ...shape],
    });
    const feeds: Record<string, FeedValue> = { [MID_RESIDUAL]: zero(this.shapes.mid) };
    this.shapes.down.forEach((s, k) => (feeds[downResidualName(k)] = zero(s)));
    this.zeros = feeds;
    return feeds;
  }
}
