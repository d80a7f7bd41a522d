import { Command, CommanderError } from "commander";
import { DiffuseError } from "../index.js";
import { registerDetect } from "./detect.js";
import { registerGenerate } from "./generate.js";
import { registerGrid } from "./grid.js";
import { registerInfo } from "./info.js";
import { registerInspect } from "./inspect.js";
import { registerModels } from "./models.js";
import { packageVersion } from "./package-version.js";
import { registerPull } from "./pull.js";
import { registerSamplers } from "./samplers.js";
import { registerServe } from "./serve.js";
import { registerUpscale } from "./upscale.js";
import { registerVerify } from "./verify.js";
import { registerWorker } from "./worker.js";

/**
 * The `diffuse` command line. Each subcommand lives in its own file and registers itself here.
 * Exit codes: 0 success, 2 bad input (one line naming the problem and the fix), 1 internal error.
 */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command("diffuse")
    .description("Stable Diffusion in TypeScript")
    .version(packageVersion(), "-V, --version", "print the version of diffuse")
    // A typo in an option or command name is answered with the closest one (also for every subcommand).
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerGenerate(program);
  registerGrid(program);
  registerInspect(program);
  registerInfo(program);
  registerVerify(program);
  registerServe(program);
  registerWorker(program);
  registerDetect(program);
  registerPull(program);
  registerModels(program);
  registerUpscale(program);
  registerSamplers(program);
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    process.exitCode = exitCodeFor(e);
  }
}

function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) {
    // Help and version are not errors; usage errors were already printed by commander.
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof DiffuseError) {
    process.stderr.write(`diffuse: ${e.message}\n`);
    return e.exitCode;
  }
  process.stderr.write(`diffuse: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}
