import { Command, CommanderError } from "commander";
import { DiffuseError } from "../errors.js";
import { packageVersion } from "./package-version.js";

type Register = (program: Command) => void;

/**
 * Each command's module, in the order `diffuse --help` lists them. A command's module imports what it runs (the
 * server and the queues for `serve`, onnxruntime and the pipeline for `generate`), so a run loads only the module of
 * the command it names: loading them all cost every start about half a second.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  generate: async () => (await import("./generate.js")).registerGenerate,
  grid: async () => (await import("./grid.js")).registerGrid,
  inspect: async () => (await import("./inspect.js")).registerInspect,
  info: async () => (await import("./info.js")).registerInfo,
  verify: async () => (await import("./verify.js")).registerVerify,
  serve: async () => (await import("./serve.js")).registerServe,
  worker: async () => (await import("./worker.js")).registerWorker,
  detect: async () => (await import("./detect.js")).registerDetect,
  pull: async () => (await import("./pull.js")).registerPull,
  models: async () => (await import("./models.js")).registerModels,
  upscale: async () => (await import("./upscale.js")).registerUpscale,
  samplers: async () => (await import("./samplers.js")).registerSamplers,
  calibrate: async () => (await import("./calibrate.js")).registerCalibrate,
};

/** `diffuse --version` prints a line that no command's module is needed for. */
const VERSION_FLAGS = ["-V", "--version"];

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
  // The command named on the line; none for the version alone; else every command (the list in --help, a typo's
  // suggestion).
  const first = argv[2] ?? "";
  const named = Object.hasOwn(COMMANDS, first)
    ? [first]
    : VERSION_FLAGS.includes(first) && argv.length === 3
      ? []
      : Object.keys(COMMANDS);
  for (const register of await Promise.all(named.map((name) => COMMANDS[name]!()))) register(program);
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
