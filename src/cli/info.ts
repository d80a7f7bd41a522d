import type { Command } from "commander";
import { InputError } from "../errors.js";
import { readImageFile } from "../image/codec.js";
import { readImageParameters } from "../image/image-parameters.js";
import { parseInfotext, splitInfotext } from "../image/infotext.js";

/** `diffuse info IMAGE`: the generation parameters stored in a PNG, JPEG or WebP (ours or AUTOMATIC1111's). */
export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("print the generation parameters (A1111 infotext) stored in a PNG, JPEG or WebP")
    .argument("<image>", "an image written by diffuse or AUTOMATIC1111")
    .option("--json", "print the parsed parameters as JSON")
    .action(async (path: string, o: { json?: boolean }) => {
      const bytes = await readImageFile(path);
      const { format, parameters, text } = await readImageParameters(bytes, path);
      if (parameters === undefined) {
        const where = format === "png" ? 'no "parameters" text chunk' : "no EXIF UserComment";
        throw new InputError(`${path} has ${where}: it was not written by diffuse or AUTOMATIC1111, or its metadata was stripped`);
      }
      if (!o.json) {
        process.stdout.write(parameters + "\n");
        return;
      }
      let parsed: unknown;
      try {
        parsed = parseInfotext(parameters);
      } catch {
        parsed = splitInfotext(parameters);
      }
      process.stdout.write(JSON.stringify({ parameters: parsed, raw: parameters, text }) + "\n");
    });
}
