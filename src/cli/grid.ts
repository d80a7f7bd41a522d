import { extname } from "node:path";
import type { Command } from "commander";
import {
  type AxisLetter,
  composeGrid,
  defaultModelPath,
  formatForPath,
  type GenerateResult,
  gridInfotext,
  InputError,
  isDefaultModel,
  loadPipeline,
  planXyzPlot,
  randomSeed,
  runXyzPlot,
  seedToJson,
  type StableDiffusionPipeline,
  type XyzAxisRequest,
  type XyzPlan,
  XYZ_AXES,
} from "../index.js";
import { checkFormat, flushed } from "./generate.js";
import {
  addGenerationOptions,
  type GenerateOptions,
  generationRequest,
  pipelineLoadOptions,
  resolveControlModels,
} from "./generate-options.js";
import { Interruption } from "./interruption.js";
import { modelOption } from "./model-option.js";
import { checkOutputsWritable, stageFiles } from "./output-files.js";
import { numberedPaths, OUTDIR_ENV, outputFolder } from "./output-folder.js";

interface GridOptions extends GenerateOptions {
  x?: string;
  y?: string;
  z?: string;
  cells?: boolean;
  legend: boolean;
  margin?: string;
  varySeeds?: string;
  keepRandomSeeds?: boolean;
}

/** `--x "cfg=3,5,7"`: the axis's name, then its values after the first "=". */
function axisOption(letter: AxisLetter, value: string | undefined): XyzAxisRequest | undefined {
  if (value === undefined) return undefined;
  const at = value.indexOf("=");
  if (at <= 0)
    throw new InputError(
      `--${letter} ${JSON.stringify(value)}: write AXIS=VALUES, e.g. --${letter} "cfg=3,5,7" or --${letter} "sampler=Euler a,DPM++ 2M"`,
    );
  return { axis: value.slice(0, at).trim(), values: value.slice(at + 1) };
}

/** `--vary-seeds x,y`: the axes along which the seed grows (A1111's vary_seeds_x/y/z). */
function varySeedsOption(value: string | undefined): Partial<Record<AxisLetter, boolean>> {
  if (value === undefined) return {};
  const out: Partial<Record<AxisLetter, boolean>> = {};
  for (const part of value.split(",").map((s) => s.trim().toLowerCase())) {
    if (part !== "x" && part !== "y" && part !== "z")
      throw new InputError(
        `--vary-seeds ${JSON.stringify(value)}: name the axes, x, y and/or z, e.g. --vary-seeds x,y`,
      );
    out[part] = true;
  }
  return out;
}

export function registerGrid(program: Command): void {
  const command = addGenerationOptions(
    program
      .command("grid")
      .description(
        "AUTOMATIC1111's X/Y/Z plot: the prompt generated over up to three varied parameters, as one labelled grid image",
      )
      .argument("<prompt>", "what to draw; (word:1.2) weights and BREAK as in AUTOMATIC1111")
      .option(
        "--x <axis=values>",
        'the X axis (columns): an axis name and its values, e.g. "cfg=3,5,7", "steps=10-30 (+10)", "sampler=Euler a,DPM++ 2M", "prompt s/r=cat,dog"; ' +
          `axes: ${XYZ_AXES.filter((a) => a.id !== "nothing")
            .map((a) => a.label)
            .join(", ")}`,
      )
      .option("--y <axis=values>", "the Y axis (rows), as --x")
      .option("--z <axis=values>", "the Z axis (one grid per value, side by side), as --x"),
  )
    .option("--cells", "also write each cell's images, as generate writes them")
    .option("--no-legend", "no axis labels and legend on the grid (A1111's Draw legend off)")
    .option("--margin <px>", "pixels between the cells (A1111's Grid margins)", "0")
    .option("--vary-seeds <axes>", "the seed grows along these axes (x, y, z), as A1111's Vary seeds")
    .option(
      "--keep-random-seeds",
      "with no --seed (or -1), let every cell draw its own random seed instead of one for all (A1111's Keep -1 for seeds)",
    )
    .option(
      "-o, --out <file>",
      "write the grid to exactly this file: .png or .jpg (default: a numbered file in the outputs folder's txt2img-grids/)",
    )
    .option(
      "--outdir <dir>",
      `without -o, the grid goes to DIR/txt2img-grids/YYYY-MM-DD/NNNNN-SEED.png and --cells to DIR/txt2img/..., as A1111 files them (default: $${OUTDIR_ENV}, else ./outputs)`,
    )
    .option("--json", "print a JSON result on stdout");
  command.action(async (prompt: string, o: GridOptions) => {
    await gridCommand(prompt, o);
    // As generate: exit with the handlers in place, once the output is flushed.
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    process.exit(0);
  });
}

async function gridCommand(prompt: string, o: GridOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const model = o.model === undefined ? defaultModelPath() : await modelOption(o.model);
  const request = generationRequest(prompt, o);
  const { params, threads, precision, prediction } = request;
  if (o.out !== undefined && o.outdir !== undefined)
    throw new InputError("-o names the exact file and --outdir the folder for numbered files: give one of them");
  const margin = Number(o.margin ?? "0");
  if (!Number.isInteger(margin) || margin < 0 || margin > 500)
    throw new InputError(`--margin ${o.margin} is not a margin: give whole pixels from 0 to 500`);
  // A1111's "Keep -1 for seeds": the request keeps no seed, so each cell draws its own.
  if (o.keepRandomSeeds && (o.seed === undefined || o.seed.trim() === "-1")) delete params.seed;
  if (o.x === undefined && o.y === undefined && o.z === undefined)
    throw new InputError('give at least one axis: --x "cfg=3,5,7" (and --y, --z)');
  const plan = await planXyzPlot({
    base: params,
    x: axisOption("x", o.x),
    y: axisOption("y", o.y),
    z: axisOption("z", o.z),
    noFixedSeeds: o.keepRandomSeeds === true,
    varySeeds: varySeedsOption(o.varySeeds),
    randomSeed,
    checkpoint: (name) => modelOption(name),
  });
  const firstSeed = plan.cells[0]?.params.seed ?? "random";
  const kind = params.initImage !== undefined ? "img2img" : "txt2img";
  const gridPath = o.out ?? numberedPaths(outputFolder(o.outdir), `${kind}-grids`, [String(firstSeed)], false)[0]!;
  const format = formatForPath(gridPath);
  checkFormat(gridPath, format, params, o.provenance);
  if (o.out !== undefined) checkOutputsWritable([gridPath]);

  const interruption = new Interruption(log).install();
  try {
    if (isDefaultModel(model) && plan.cells.some((c) => c.checkpoint === undefined))
      log(
        "using the embedded tiny shapes model (a demo that draws coloured shapes); pass --model for real Stable Diffusion",
      );
    await resolveControlModels(params);
    for (const cell of plan.cells) if (cell.params.controlnet) cell.params.controlnet = params.controlnet;
    const loadOptions = await pipelineLoadOptions(o, { threads, precision, prediction }, log);
    // The pipeline that ran the first cell stays open to encode the grid (it carries that cell's infotext); a
    // Checkpoint name axis runs outermost, so any other model is loaded once, used for its cells, and closed.
    const pipes = new Map<string, StableDiffusionPipeline>();
    let first: StableDiffusionPipeline | undefined;
    const pipelineFor = async (path: string) => {
      let pipe = pipes.get(path);
      if (pipe) return pipe;
      for (const [p, open] of pipes)
        if (open !== first) {
          await open.close();
          pipes.delete(p);
        }
      pipe = await loadPipeline(path, loadOptions);
      pipes.set(path, pipe);
      first ??= pipe;
      return pipe;
    };
    try {
      const showProgress = o.progress && !o.json;
      const results: GenerateResult[] = await runXyzPlot(
        plan,
        async (cell) => {
          const pipe = await pipelineFor(cell.checkpoint ?? model);
          interruption.check();
          return pipe.generate({ ...cell.params, signal: interruption.signal });
        },
        {
          signal: interruption.signal,
          onCell: (k, n) => {
            if (showProgress) log(`cell ${k} of ${n}`);
          },
        },
      );
      await interruption.pausePoint("generated");
      interruption.check();
      const encoded = await encodeGrid(plan, results, first!, format, o, margin);
      await writeOutputs(o, results, encoded, gridPath, kind, interruption, log);
    } finally {
      for (const pipe of pipes.values()) await pipe.close();
    }
  } catch (e) {
    interruption.dispose();
    interruption.check();
    throw e;
  }
}

/** The axis names, for the legend line above the grid. */
function legendTitle(plan: XyzPlan): string {
  return [plan.x, plan.y, plan.z]
    .filter((a) => a.axis.id !== "nothing")
    .map((a) => `${a.letter.toUpperCase()}: ${a.axis.label}`)
    .join("  ");
}

async function encodeGrid(
  plan: XyzPlan,
  results: readonly GenerateResult[],
  pipe: StableDiffusionPipeline,
  format: ReturnType<typeof formatForPath>,
  o: GridOptions,
  margin: number,
): Promise<{ bytes: Buffer; infotext: string }> {
  const { grid } = composeGrid(
    results.map((r) => r.images[0]?.image),
    { x: plan.x.labels, y: plan.y.labels, z: plan.z.labels },
    { legend: o.legend, margin, title: legendTitle(plan) },
  );
  const first = results[0]!;
  return pipe.encodeComposed(grid, gridInfotext(first.info, plan), first.parameters, first.images[0]!.seed, format);
}

async function writeOutputs(
  o: GridOptions,
  results: readonly GenerateResult[],
  gridOut: { bytes: Buffer; infotext: string },
  gridPath: string,
  kind: "txt2img" | "img2img",
  interruption: Interruption,
  log: (s: string) => void,
): Promise<void> {
  const cellImages = o.cells ? results.flatMap((r, index) => r.images.map((image, j) => ({ index, j, image }))) : [];
  const seedName = (i: { image: GenerateResult["images"][number] }) =>
    i.image.subseed === undefined ? String(i.image.seed) : `${i.image.seed}-${i.image.subseed}`;
  const cellPaths =
    o.out !== undefined
      ? cellImages.map((c) => {
          const ext = extname(gridPath);
          const several = results[c.index]!.images.length > 1 ? `-${c.j}` : "";
          return `${gridPath.slice(0, gridPath.length - ext.length)}-cell-${c.index}${several}${ext}`;
        })
      : numberedPaths(outputFolder(o.outdir), kind, cellImages.map(seedName), true);
  const format = formatForPath(gridPath);
  const cellBytes = await Promise.all(cellImages.map((c) => c.image.encode(format)));
  const target =
    o.out ?? numberedPaths(outputFolder(o.outdir), `${kind}-grids`, [String(results[0]!.images[0]!.seed)], true)[0]!;
  const staged = stageFiles([
    { path: target, bytes: gridOut.bytes },
    ...cellBytes.map((bytes, i) => ({ path: cellPaths[i]!, bytes })),
  ]);
  const forget = interruption.onForcedExit(() => staged.discard());
  try {
    interruption.commit(() => {
      const written = staged.commit();
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({
            grid: written[0],
            cells: written.slice(1),
            info: gridOut.infotext,
            infotexts: results.map((r) => r.info),
            seeds: results.map((r) => seedToJson(r.images[0]!.seed)),
            warnings: [...new Set(results.flatMap((r) => r.warnings))],
          })}\n`,
        );
      } else {
        for (const w of new Set(results.flatMap((r) => r.warnings))) log(`warning: ${w}`);
        for (const f of written) process.stdout.write(`${f}\n`);
      }
    });
  } finally {
    staged.discard();
    forget();
  }
}
