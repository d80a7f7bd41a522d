import type { Command } from "commander";
import { exportInt8Calibration, InputError, SHIPPED_CALIBRATION_FILE, SINGLE_FILE_SUFFIX } from "../index.js";
import { threadsOption } from "./generate-options.js";
import { terminalLicensePrompt } from "./license-prompt.js";
import { addCheckpointOptions } from "./model-options.js";
import { modelOption } from "./model-option.js";

interface CalibrateOptions {
  model?: string;
  out?: string;
  config?: string;
  tokenizer?: string;
  tokenizer2?: string;
  acceptLicense?: boolean;
  threads?: string;
  json?: boolean;
}

const AFTER_HELP = `
The file holds the activation ranges of the int8 UNet and VAE decoder, the sha256 of the model's files they were
measured on, a digest of the fp32 graphs their tensor names refer to, and the runs that measured them. Ship it in
the model's folder (${SHIPPED_CALIBRATION_FILE}) or beside a single file (<file>${SINGLE_FILE_SUFFIX}): a
--precision int8 load that finds it valid for the model and its graphs uses it instead of calibrating (minutes for
a full-size model), and keeps it in the compile cache. A file of other weights or graphs (another diffuse version)
is ignored, saying why, and the model is calibrated as usual.`;

/** `diffuse calibrate --model PATH [--out FILE]`: a model's int8 calibration, written for its folder to ship. */
export function registerCalibrate(program: Command): void {
  const command = program
    .command("calibrate")
    .description(
      "measure a model's int8 calibration (as the first --precision int8 use does) and write it beside the model, " +
        "so that its users skip that step",
    );
  addCheckpointOptions(command)
    .option(
      "--out <file>",
      `where to write it (default: ${SHIPPED_CALIBRATION_FILE} in a diffusers folder, ` +
        `<file>${SINGLE_FILE_SUFFIX} beside a single file, where int8 loads look)`,
    )
    .option("--threads <n>", "CPU threads, 1 or more (default: all cores)")
    .option("--json", "print a JSON result on stdout")
    .addHelpText("after", AFTER_HELP)
    .action(async (o: CalibrateOptions) => {
      if (o.model === undefined)
        throw new InputError(
          "calibrate needs --model: the checkpoint or diffusers folder whose int8 calibration to write",
        );
      const log = (s: string) => process.stderr.write(`${s}\n`);
      const threads = threadsOption(o.threads);
      const result = await exportInt8Calibration(await modelOption(o.model), {
        out: o.out,
        config: o.config,
        tokenizer: o.tokenizer,
        tokenizer2: o.tokenizer2,
        acceptLicense: o.acceptLicense,
        confirmLicense: terminalLicensePrompt(),
        threads,
        onStatus: log,
      });
      if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        const counts = Object.entries(result.tensors).map(([n, c]) => `${n} ${c}`);
        process.stdout.write(
          `wrote ${result.file}: ranges of ${counts.join(", ")} tensors, ` +
            `for the model with sha256 ${result.modelSha256}\n`,
        );
      }
    });
}
