import type { Command } from "commander";
import {
  InputError,
  parseInfotext,
  readImageFile,
  readImageParameters,
  requestFromInfotext,
  seedToJson,
  splitInfotext,
} from "../index.js";

/** `diffuse info IMAGE`: the generation parameters stored in a PNG, JPEG or WebP (ours or AUTOMATIC1111's). */
export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("print the generation parameters (A1111 infotext) stored in a PNG, JPEG or WebP")
    .argument("<image>", "an image written by diffuse or AUTOMATIC1111")
    .option("--json", "print the parsed parameters as JSON, with the request (library parameters) that makes it again")
    .action(async (path: string, o: { json?: boolean }) => {
      const bytes = await readImageFile(path);
      const { format, parameters, text } = await readImageParameters(bytes, path);
      if (parameters === undefined) {
        const where = format === "png" ? 'no "parameters" text chunk' : "no EXIF UserComment";
        throw new InputError(
          `${path} has ${where}: it was not written by diffuse or AUTOMATIC1111, or its metadata was stripped`,
        );
      }
      if (!o.json) {
        process.stdout.write(parameters + "\n");
        return;
      }
      let parsed: unknown;
      let request: unknown;
      try {
        const typed = parseInfotext(parameters);
        // JSON holds the seed exactly: a number up to 2^53 - 1, a string beyond.
        parsed = { ...typed, seed: seedToJson(typed.seed) };
        // The library request that makes the image again (GenerateParams), seeds as JSON holds them.
        const r = requestFromInfotext(typed);
        request = {
          ...r,
          seed: seedToJson(BigInt(r.seed!)),
          ...(r.subseed !== undefined ? { subseed: seedToJson(BigInt(r.subseed)) } : {}),
        };
      } catch {
        parsed = splitInfotext(parameters);
      }
      process.stdout.write(JSON.stringify({ parameters: parsed, raw: parameters, text, request }) + "\n");
    });
}
