import { extname } from "node:path";
import type { Command } from "commander";
import { DEFAULT_TILES, formatForPath, InputError, readImageFile, UpscalerRegistry } from "../index.js";
import { canCarryCredentials, signableFormatNames, signerConfigFromEnv } from "../responsible/provenance/index.js";
import { postprocessUpscale } from "../upscale/postprocess.js";
import { integer } from "./model-options.js";
import { checkOutputsWritable, stageFiles } from "./output-files.js";
import { collect } from "./repeatable.js";

interface UpscaleFlags {
  scale?: string;
  width?: string;
  height?: string;
  crop: boolean;
  upscaler: string;
  output?: string;
  modelsDir: string[];
  list?: boolean;
  tile?: string;
  tileOverlap?: string;
  threads?: string;
  watermark: boolean;
  provenance: boolean;
  c2paKey?: string;
  c2paCert?: string;
}

/**
 * `diffuse upscale IMAGE --scale 4 [--upscaler NAME] [-o OUT]`: A1111's Extras upscale from the command line, with
 * A1111's upscaler names (None, Lanczos, Nearest, and the ESRGAN / Real-ESRGAN files of the model folders).
 */
export function registerUpscale(program: Command): void {
  program
    .command("upscale")
    .description("upscale an image with Lanczos, Nearest or an ESRGAN / Real-ESRGAN model (A1111's Extras)")
    .argument("[image]", "the image to upscale (PNG, JPEG or WebP)")
    .option("--scale <factor>", "upscale by this factor (up to 8; default 2)")
    .option("--width <px>", "upscale to this width (with --height), cropping to fit")
    .option("--height <px>", "upscale to this height (with --width)")
    .option("--no-crop", "with --width/--height: keep the whole upscaled image instead of cropping to the size")
    .option("--upscaler <name>", "an upscaler as --list shows them (A1111's names)", "Lanczos")
    .option("-o, --output <file>", "where to write the result (default: IMAGE-upscaled.png beside it)")
    .option(
      "--models-dir <dir>",
      "an A1111 or ComfyUI installation whose upscaler models to use (repeatable; also modelsDirs in $DIFFUSE_HOME/config.json)",
      collect,
      [] as string[],
    )
    .option("--list", "list the upscalers and their files, then exit")
    .option(
      "--tile <px>",
      `tile side for learned upscalers, 0 for none (A1111's ESRGAN_tile, default ${DEFAULT_TILES.tile})`,
    )
    .option("--tile-overlap <px>", `overlap between tiles (default ${DEFAULT_TILES.overlap})`)
    .option("--threads <n>", "onnxruntime threads (default: all cores)")
    .option("--no-watermark", "do not embed the invisible watermarks (written into the image's metadata)")
    .option("--no-provenance", "do not sign the image with C2PA content credentials")
    .option("--c2pa-key <file>", "PEM private key to sign with (with --c2pa-cert)")
    .option("--c2pa-cert <file>", "PEM certificate chain of that key")
    .action(async (image: string | undefined, o: UpscaleFlags) => {
      const tiles = {
        tile: integer("--tile", o.tile) ?? DEFAULT_TILES.tile,
        overlap: integer("--tile-overlap", o.tileOverlap) ?? DEFAULT_TILES.overlap,
      };
      const registry = new UpscalerRegistry(
        { modelsDirs: o.modelsDir },
        { threads: integer("--threads", o.threads), tiles },
      );
      try {
        if (o.list) {
          for (const e of registry.list()) process.stdout.write(`${e.name}${e.modelPath ? `\t${e.modelPath}` : ""}\n`);
          return;
        }
        if (image === undefined) throw new InputError("name the image to upscale: diffuse upscale IMAGE --scale 4");
        const output = o.output ?? `${image.slice(0, image.length - extname(image).length)}-upscaled.png`;
        const format = formatForPath(output);
        if (o.provenance && !canCarryCredentials(format))
          throw new InputError(
            `${output}: C2PA content credentials fit ${signableFormatNames()} only; write one of those or pass --no-provenance`,
          );
        const scale = o.scale === undefined ? undefined : Number(o.scale);
        if (o.scale !== undefined && (o.scale.trim() === "" || !Number.isFinite(scale)))
          throw new InputError(`--scale ${JSON.stringify(o.scale)} is not a number`);
        const width = integer("--width", o.width);
        const height = integer("--height", o.height);
        if ((width === undefined) !== (height === undefined) || (scale !== undefined && width !== undefined))
          throw new InputError("give --scale, or --width and --height together");
        checkOutputsWritable([output]);
        const upscaler = registry.get(o.upscaler);
        const result = await postprocessUpscale(await readImageFile(image), {
          upscaler,
          ...(width === undefined ? { scale: scale ?? 2 } : { width, height, crop: o.crop }),
          format,
          watermark: o.watermark,
          provenance: o.provenance
            ? {
                ...signerConfigFromEnv(),
                ...(o.c2paKey ? { keyPath: o.c2paKey } : {}),
                ...(o.c2paCert ? { certPath: o.c2paCert } : {}),
              }
            : false,
          name: image,
        });
        const [written] = stageFiles([{ path: output, bytes: result.bytes }]).commit();
        process.stderr.write(`${written}: ${result.width}x${result.height} (${result.infotext})\n`);
      } finally {
        await registry.close();
      }
    });
}
