import { InputError } from "../errors.js";

/**
 * Finding where a run stands in a schedule, shared by the sigma-space and multistep samplers.
 * A timestep that occurs twice (Karras schedules repeat small timesteps, PNDM repeats its first) resolves to the
 * second occurrence, so a run that starts part-way does not skip a noise level; undefined when absent.
 */
export function findTimestepIndex(timesteps: Float64Array, timestep: number): number | undefined {
  const hits: number[] = [];
  timesteps.forEach((t, i) => {
    if (t === timestep) hits.push(i);
  });
  return hits.length > 1 ? hits[1] : hits[0];
}

export function checkBeginIndex(index: number, length: number, unit: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new InputError(
      `begin index ${index} is outside the schedule of ${length} ${unit}: call setTimesteps first and pass an index into timesteps`,
    );
  }
}

/** The run's step index, found on its first call from the begin index or the timestep, checked against the end. */
export function resolveStepIndex(
  stepIndex: number | undefined,
  beginIndex: number | undefined,
  length: number,
  find: () => number,
): number {
  if (length === 0) throw new InputError("call setTimesteps before stepping the scheduler");
  const index = stepIndex ?? beginIndex ?? find();
  if (index >= length)
    throw new InputError(`the scheduler has already taken all ${length} steps: call setTimesteps to start a new run`);
  return index;
}
