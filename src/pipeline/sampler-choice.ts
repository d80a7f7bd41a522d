import { InputError } from "../errors.js";
import { resolveSamplerSchedule, type ScheduleType } from "../schedulers/index.js";

/**
 * A requested sampler and schedule type as a generation records them: the sampler as asked when it names one
 * sampler, else its label (A1111's "Euler Karras" is Euler with the Karras schedule: the sampler is then named
 * alone), and the schedule type's name. An InputError for an unknown name or a pair that does not go together.
 */
export function samplerAndSchedule(asked: string, askedSchedule: unknown): { sampler: string; schedule: ScheduleType } {
  if (typeof asked !== "string") throw new InputError(`sampler ${JSON.stringify(asked)} must be a sampler's name`);
  if (askedSchedule !== undefined && typeof askedSchedule !== "string")
    throw new InputError(
      `schedule type ${JSON.stringify(askedSchedule)} must be a schedule type's name, e.g. "Karras"`,
    );
  const { sampler, schedule } = resolveSamplerSchedule(asked, askedSchedule);
  const name = asked.trim().toLowerCase();
  return {
    sampler: sampler.name === name || sampler.label.toLowerCase() === name ? asked : sampler.label,
    schedule: schedule.name,
  };
}
