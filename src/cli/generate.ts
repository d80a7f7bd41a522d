import { extname } from "node:path";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import {
  defaultModelPath,
  duration,
  formatForPath,
  gib,
  type GenerateParams,
  type GenerateResult,
  IMAGE_FORMATS,
  type ImageFormat,
  InputError,
  isDefaultModel,
  loadPipeline,
  machineMemoryLimit,
  seedToJson,
  type StableDiffusionPipeline,
} from "../index.js";
import { canCarryCredentials, signableFormatNames } from "../responsible/provenance/index.js";
import { exifWithUserComment } from "../image/exif-user-comment.js";
import { fitsJpegExif } from "../image/jpeg-exif.js";
import {
  addGenerationOptions,
  type GenerateOptions,
  generationRequest,
  num,
  pipelineLoadOptions,
  resolveControlModels,
} from "./generate-options.js";
import { Interruption } from "./interruption.js";
import { checkOutputsWritable, stageFiles } from "./output-files.js";
import { numberedPaths, OUTDIR_ENV, outputFolder } from "./output-folder.js";
import { PreviewFile } from "./preview-file.js";
import { modelOption } from "./model-option.js";

/**
 * Output file names: `{seed}` and `{n}` are replaced; several images without a placeholder get "-n" suffixes.
 * With a variation every image has the same seed, so `{seed}` is then SEED-VARIATIONSEED.
 */
export function outputPaths(pattern: string, seeds: readonly (bigint | string)[]): string[] {
  const placeholder = /\{seed\}|\{n\}/.test(pattern);
  return seeds.map((seed, n) => {
    if (placeholder) return pattern.replaceAll("{seed}", String(seed)).replaceAll("{n}", String(n));
    if (seeds.length === 1) return pattern;
    const ext = extname(pattern);
    return `${pattern.slice(0, pattern.length - ext.length)}-${n}${ext}`;
  });
}

export function registerGenerate(program: Command): void {
  const command = addGenerationOptions(
    program
      .command("generate")
      .description("turn a prompt (and optionally a sketch or photo, and a mask) into images")
      .argument("<prompt>", "what to draw; (word:1.2) weights and BREAK as in AUTOMATIC1111"),
  )
    .option(
      "-o, --out <file>",
      "write exactly this file: .png, .jpg/.jpeg or .webp (the extension picks the format); {seed} and {n} are replaced (default: a numbered file in the outputs folder)",
    )
    .option(
      "--outdir <dir>",
      `without -o, images go to DIR/txt2img/YYYY-MM-DD/NNNNN-SEED.png (img2img/ with --init), as A1111 files them (default: $${OUTDIR_ENV}, else ./outputs)`,
    )
    .option("--json", "print a JSON result on stdout")
    .option(
      "--max-memory <GiB>",
      "refuse a generation whose memory estimate is over this many GiB (default: what the machine has free)",
    )
    .option(
      "--preview <file>",
      "write the image as it forms to this PNG after each step (drawn by a TAESD given with --vae or --preview-vae, else a quick approximation); only what the safety checker lets through",
    );
  command.action(async (prompt: string, o: GenerateOptions & { maxMemory?: string }) => {
    await generateCommand(prompt, o);
    // The run is complete: exit here, with its handlers still in place. Left to Node's own teardown, the
    // process lives on for tens of milliseconds with its signal handlers already removed (onnxruntime
    // unloads then), and a signal in that window killed a run whose files were all written.
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    process.exit(0);
  });
}

/** Resolves once everything written to the stream so far has been handed to the OS. */
export function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write("", () => resolve()));
}

async function generateCommand(prompt: string, o: GenerateOptions & { maxMemory?: string }): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const model = o.model === undefined ? defaultModelPath() : await modelOption(o.model);
  const { params, seed, threads, precision, prediction } = generationRequest(prompt, o);
  const maxMemory = maxMemoryOption(o.maxMemory);
  if (o.out !== undefined && o.outdir !== undefined)
    throw new InputError("-o names the exact file and --outdir the folder for numbered files: give one of them");

  // Installed first, so that no signal from here on kills the process between two file operations.
  const interruption = new Interruption(log).install();
  try {
    const format = checkOutputs(o, params, seed);
    if (o.preview !== undefined) checkOutputsWritable([o.preview]);
    if (isDefaultModel(model)) {
      log(
        "using the embedded tiny shapes model (a demo that draws coloured shapes); pass --model path/to/sd-v1-5.safetensors for real Stable Diffusion",
      );
    }
    await resolveControlModels(params);
    const pipe = await loadPipeline(model, await pipelineLoadOptions(o, { threads, precision, prediction }, log));
    try {
      checkEstimate(pipe, params, maxMemory, log);
      await interruption.pausePoint("loaded");
      interruption.check();
      await run(pipe, params, format, o, interruption, log);
    } finally {
      await pipe.close();
    }
  } catch (e) {
    // Whatever stopped the run after a signal (the pipeline's abort included), the signal is the cause.
    interruption.dispose();
    interruption.check();
    throw e;
  }
  // On success the handlers stay until the process exits: a signal now finds the run complete (exit 0)
  // instead of killing a process whose files are already written.
}

/** A generation expected to run longer than this many seconds is announced with its estimate. */
const LONG_RUN_SECONDS = 30;

/**
 * Refuses a generation whose memory estimate is over the limit (--max-memory, else what the machine has free)
 * before anything runs, and says how long and how much memory a long one will take.
 */
function checkEstimate(
  pipe: StableDiffusionPipeline,
  params: GenerateParams,
  maxMemory: number | undefined,
  log: (s: string) => void,
): void {
  const limit = maxMemory ?? machineMemoryLimit();
  const { estimate, refusal } = pipe.checkMemory(params, limit);
  if (refusal) {
    const raise =
      maxMemory === undefined
        ? `the limit is the memory this machine has free; pass --max-memory ${Math.ceil(estimate.bytes / 1024 ** 3)} to run it anyway (it may swap or be killed)`
        : `raise --max-memory to ${Math.ceil(estimate.bytes / 1024 ** 3)} to run it anyway`;
    throw new InputError(`${refusal}; ${raise}`);
  }
  if (estimate.seconds > LONG_RUN_SECONDS)
    log(
      `estimate: about ${duration(estimate.seconds)} of compute (longer on a busy machine) and ${gib(estimate.bytes)} of memory`,
    );
}

/** `--max-memory GIB`: a positive number of GiB, as bytes. */
function maxMemoryOption(value: string | undefined): number | undefined {
  const n = num("--max-memory", value);
  if (n === undefined) return undefined;
  if (n <= 0)
    throw new InputError(
      `--max-memory ${value} is not a memory size: give a positive number of GiB, e.g. --max-memory 16`,
    );
  return n * 1024 ** 3;
}

async function run(
  pipe: StableDiffusionPipeline,
  params: GenerateParams,
  format: ImageFormat,
  o: GenerateOptions,
  interruption: Interruption,
  log: (s: string) => void,
): Promise<void> {
  const showBar = o.progress && !o.json && process.stderr.isTTY;
  const bar = showBar
    ? new cliProgress.SingleBar(
        { format: "{bar} {value}/{total} steps | {speed} s/it | ETA {eta}s", stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let lastStepAt = performance.now();
  let result: GenerateResult;
  const preview = o.preview === undefined ? undefined : new PreviewFile(o.preview);
  try {
    result = await pipe.generate({
      ...params,
      signal: interruption.signal,
      onStep: (e) => {
        preview?.show(e.preview);
        const now = performance.now();
        const speed = ((now - lastStepAt) / 1000).toFixed(2);
        lastStepAt = now;
        if (!bar) return;
        if (e.step === 1) bar.start(e.steps, 0, { speed });
        bar.update(e.step, { speed });
        if (e.step === e.steps) bar.stop();
      },
    });
  } finally {
    bar?.stop();
  }
  await preview?.done();
  await interruption.pausePoint("generated");
  interruption.check();
  for (const w of result.warnings) log(`warning: ${w}`);
  const seeds = result.images.map((i) => i.seed);
  const paths = outputTargets(
    o,
    params,
    result.images.map((i) => (i.subseed === undefined ? i.seed : `${i.seed}-${i.subseed}`)),
    "write",
  );
  const encoded = await Promise.all(result.images.map((i) => i.encode(format)));
  await interruption.pausePoint("encoded");
  interruption.check();
  // Staged under temporary names, then committed by renames only if no signal came in the meantime: each
  // file is whole or absent, and an interrupted run leaves none.
  const staged = stageFiles(encoded.map((bytes, i) => ({ path: paths[i]!, bytes })));
  const forget = interruption.onForcedExit(() => staged.discard());
  try {
    await interruption.pausePoint("staged");
    interruption.commit(() => {
      const written = staged.commit();
      if (o.json) {
        // Seeds past 2^53 - 1 are written as strings: a number would lose digits in every JSON reader of JavaScript.
        const { subseed: used, ...rest } = result.parameters;
        const parameters = {
          ...rest,
          seed: seedToJson(result.parameters.seed),
          ...(used !== undefined ? { subseed: seedToJson(used) } : {}),
        };
        process.stdout.write(
          JSON.stringify({
            images: written,
            seeds: seeds.map(seedToJson),
            parameters,
            info: result.info,
            warnings: result.warnings,
          }) + "\n",
        );
      } else {
        log(`seed ${seeds.join(", ")}`);
        for (const f of written) process.stdout.write(`${f}\n`);
      }
    });
  } finally {
    staged.discard();
    forget();
  }
  await interruption.pausePoint("committed");
}

/**
 * Everything about the outputs that can fail, checked before the model loads: the format the extension
 * names, whether that format can carry the provenance asked for, the names and targets, the folders'
 * writability. The same checks run again when the files are committed.
 */
function checkOutputs(o: GenerateOptions, params: GenerateParams, seed: bigint): ImageFormat {
  const paths = outputTargets(o, params, expectedSeeds(params, seed), "check");
  const formats = new Set(paths.map(formatForPath));
  if (formats.size !== 1)
    throw new InputError(`-o ${o.out} gives names with different extensions; use one image format for the run`);
  const format = [...formats][0]!;
  checkFormat(paths[0]!, format, params, o.provenance);
  // Numbered files are new names in a folder numberedPaths checked (it is created just before writing).
  if (o.out !== undefined) checkOutputsWritable(paths);
  return format;
}

/**
 * Whether images in `format` can carry what they must: the content credentials asked for, and for a JPEG the
 * parameters in its 64 KB EXIF segment; an InputError saying what to write instead otherwise.
 */
export function checkFormat(path: string, format: ImageFormat, params: GenerateParams, provenance: boolean): void {
  if (provenance && !canCarryCredentials(format)) {
    throw new InputError(
      `${path}: ${IMAGE_FORMATS[format].name} images cannot carry C2PA content credentials here (diffuse signs ${signableFormatNames()} only); ` +
        `write .png or .jpg, or pass --no-provenance to write ${IMAGE_FORMATS[format].name} without them (the image's metadata then says so)`,
    );
  }
  if (
    format === "jpeg" &&
    !fitsJpegExif(
      exifWithUserComment(`${params.prompt}\n${params.negativePrompt ?? ""}`).length + PARAMETER_LINE_ALLOWANCE,
    )
  ) {
    throw new InputError(
      `the prompt is too long for a JPEG's metadata (its EXIF segment holds 64 KB, and the parameters are stored there): write .png or .webp instead`,
    );
  }
}

/**
 * Where the images go: exactly the -o names, or numbered files in the outputs folder (img2img's when there is an init
 * image, as A1111 files inpainting too). Called again just before writing, so the numbers are the folder's latest.
 */
function outputTargets(
  o: GenerateOptions,
  params: GenerateParams,
  seeds: readonly (bigint | string)[],
  phase: "check" | "write",
): string[] {
  if (o.out !== undefined) return outputPaths(o.out, seeds);
  const kind = params.initImage !== undefined ? "img2img" : "txt2img";
  return numberedPaths(outputFolder(o.outdir), kind, seeds, phase === "write");
}

/** Room for the infotext's parameter line (steps, sampler, seed, model...) beside the prompts, in EXIF bytes. */
const PARAMETER_LINE_ALLOWANCE = 4096;

/**
 * The seeds the pipeline will give the images: seed, seed + 1, ... over batch size x batch count; with a
 * variation, the seed and the variation seeds subseed, subseed + 1, ... (as outputPaths names them).
 */
function expectedSeeds(p: GenerateParams, seed: bigint): (bigint | string)[] {
  const count = (v: number | undefined) => (v === undefined ? 1 : Number.isInteger(v) && v >= 1 ? v : NaN);
  const n = count(p.batchSize) * count(p.batchCount);
  // Invalid counts are refused by the pipeline with their own message; the outputs are checked for one image.
  const images = Number.isFinite(n) && n <= MAX_CHECKED_OUTPUTS ? n : 1;
  const subseed = p.subseedStrength !== undefined && p.subseedStrength > 0 ? p.subseed : undefined;
  return Array.from({ length: images }, (_, i) =>
    subseed === undefined ? seed + BigInt(i) : `${seed}-${BigInt(subseed) + BigInt(i)}`,
  );
}

const MAX_CHECKED_OUTPUTS = 64_000;
