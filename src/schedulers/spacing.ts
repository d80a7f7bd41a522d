/**
 * Choosing which training timesteps an inference run visits (`timestep_spacing`), with the reference's exact
 * integer arithmetic and numpy rounding, so schedules agree entry for entry.
 */
import { InputError } from "../errors.js";
import { f32, npArange, npLinspace, roundHalfEven } from "./numerics.js";
import type { TimestepSpacing } from "./scheduler.js";

export function checkSteps(numInferenceSteps: number, numTrainTimesteps: number): void {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > numTrainTimesteps) {
    throw new InputError(
      `steps must be an integer from 1 to ${numTrainTimesteps} (the model's training timesteps), got ${numInferenceSteps}`,
    );
  }
}

/**
 * `n` descending timesteps, one per step, as DDIM, DDPM and the sigma-space (Euler family) schedulers space them.
 * `linspace` says what becomes of linspace's fractions: rounded to whole timesteps (DDIM, DDPM, PNDM) or kept,
 * in float32 or float64 as the reference's class does, for sigma-space schedulers that interpolate the table.
 */
export function spacedTimesteps(
  spacing: TimestepSpacing,
  n: number,
  numTrain: number,
  stepsOffset: number,
  linspace: "round" | "float32" | "float64",
): Float64Array {
  checkSteps(n, numTrain);
  switch (spacing) {
    case "linspace": {
      const t = npLinspace(0, numTrain - 1, n).reverse();
      return linspace === "float64" ? t : t.map(linspace === "float32" ? f32 : roundHalfEven);
    }
    case "leading": {
      // Integer stride from 0; the offset shifts the grid so the last step lands on t=1 for SD's steps_offset=1.
      const ratio = Math.floor(numTrain / n);
      const t = new Float64Array(n);
      for (let i = 0; i < n; i++) t[i] = (n - 1 - i) * ratio + stepsOffset;
      return t;
    }
    case "trailing": {
      // Fractional stride down from the last training step, so the first step always starts at pure noise.
      return npArange(numTrain, 0, -numTrain / n).map((v) => roundHalfEven(v) - 1);
    }
    default:
      throw new InputError(
        `timestep_spacing "${String(spacing)}" is not supported: use "leading", "linspace" or "trailing"`,
      );
  }
}

/**
 * `n` descending timesteps as the multistep solvers (DPM-Solver, UniPC) space them: they split the range into
 * n + 1 parts and drop the final one, so their last step never lands on t=0. `lastTimestep` is the training
 * range after lambda_min_clipped.
 */
export function multistepTimesteps(
  spacing: TimestepSpacing,
  n: number,
  numTrain: number,
  stepsOffset: number,
  lastTimestep = numTrain,
): Float64Array {
  checkSteps(n, numTrain);
  switch (spacing) {
    case "linspace":
      return npLinspace(0, lastTimestep - 1, n + 1)
        .reverse()
        .subarray(0, n)
        .map(roundHalfEven);
    case "leading": {
      const ratio = Math.floor(lastTimestep / (n + 1));
      const t = new Float64Array(n);
      for (let i = 0; i < n; i++) t[i] = (n - i) * ratio + stepsOffset;
      return t;
    }
    case "trailing":
      return npArange(lastTimestep, 0, -numTrain / n).map((v) => roundHalfEven(v) - 1);
    default:
      throw new InputError(
        `timestep_spacing "${String(spacing)}" is not supported: use "leading", "linspace" or "trailing"`,
      );
  }
}
