import type { Command } from "commander";
import { listSamplers, listScheduleTypes } from "../index.js";

/** One line per sampler, our name then A1111's label, as `generate --sampler` takes either. */
export function samplerLines(): string[] {
  const samplers = listSamplers();
  const width = Math.max(...samplers.map((s) => s.name.length));
  return samplers.map((s) => `${s.name.padEnd(width)}  ${s.label}`);
}

/** The samplers for an option's help: "euler-a (Euler a), ...". */
export function samplerSummary(): string {
  return listSamplers()
    .map((s) => `${s.name} (${s.label})`)
    .join(", ");
}

export function registerSamplers(program: Command): void {
  program
    .command("samplers")
    .description("list the samplers and schedule types generate --sampler and --schedule take")
    .action(() => {
      const lines = [
        "Samplers (our name, then AUTOMATIC1111's label; --sampler takes either):",
        ...samplerLines(),
        "",
        "Schedule types (--schedule, for the k-diffusion samplers):",
        ...listScheduleTypes().map((t) => t.label),
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
