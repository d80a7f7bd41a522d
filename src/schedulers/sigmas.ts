/**
 * Noise levels in sigma space (x_t = x_0 + sigma * noise, the k-diffusion parametrisation): the table over
 * training timesteps, the Karras et al. (2022) rho=7 schedule, and the map from a sigma back to a (fractional)
 * timestep for the model's conditioning.
 */
import { f32, npInterpIndex, npLinspace } from "./numerics.js";

/** sigma_t = sqrt((1 - alphas_cumprod) / alphas_cumprod) per training timestep, in float32 as the reference. */
export function trainSigmas(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** log of each sigma, rounded to float32 because the reference takes numpy's log of a float32 array. */
export function logSigmas(sigmas: Float32Array): Float32Array {
  return sigmas.map((s) => f32(Math.log(s)));
}

/** numpy.interp of the sigma table at (possibly fractional) timesteps, in float64. */
export function interpSigmas(timesteps: ArrayLike<number>, table: Float32Array): Float64Array {
  return Float64Array.from(timesteps, (t) => npInterpIndex(t, table));
}

/**
 * Karras et al. (2022), eq. 5 with rho = 7: steps evenly spaced in sigma^(1/7), which spends more of the
 * schedule at low noise than the training grid does.
 */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  const rho = 7.0;
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/**
 * The fractional training timestep whose sigma is `sigma`, interpolating linearly in log sigma between the
 * two table entries around it (clamped to the table's ends).
 */
export function sigmaToT(sigma: number, logTable: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  // The reference takes the index of the last table entry at or below logSigma (first index where the running
  // count of such entries peaks), which for a monotonic table is a plain search; kept literal for odd tables.
  let count = 0;
  let best = -1;
  let low = 0;
  for (let i = 0; i < logTable.length; i++) {
    if (logSigma - logTable[i] >= 0) count++;
    if (count > best) {
      best = count;
      low = i;
    }
  }
  low = Math.min(low, logTable.length - 2);
  const lo = logTable[low];
  const hi = logTable[low + 1];
  const w = Math.min(Math.max((lo - logSigma) / (lo - hi), 0), 1);
  return (1 - w) * low + w * (low + 1);
}

/** The VP coefficients of a sigma: alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t, in float32. */
export function alphaSigmaOf(sigma: number): { alpha: number; sigma: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return { alpha, sigma: f32(sigma * alpha) };
}
