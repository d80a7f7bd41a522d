import { decodeImage, type RgbImage } from "../image/codec.js";
import { composeGrid } from "../image/grid-image.js";
import { InputError, InternalError } from "../errors.js";
import { stringifyExact } from "../json-exact.js";
import { parseSeed, RANDOM_SEED, randomSeed, seedToJson } from "../random/seed.js";
import { finishComposedImage } from "../responsible/composed-image.js";
import type { XyzAxisId } from "../pipeline/xyz-axes.js";
import {
  type AxisLetter,
  gridInfotext,
  planXyzPlot,
  runXyzPlot,
  type XyzAxisRequest,
  type XyzPlan,
  type XyzPlannedCell,
} from "../pipeline/xyz-plot.js";
import type { JobParams, JobType } from "./api-types.js";
import { A1111Error, a1111InfoFields } from "./a1111-mapping.js";
import type { KnownCheckpoint } from "./checkpoints.js";
import type { ServerContext } from "./context.js";
import { generateParamsOf, resolveSeed } from "./job-params.js";
import type { ServedModel } from "./job-queue.js";
import type { ModelDescription } from "../worker/model-host.js";
import type { ImageRecord, JobRecord, Uploads } from "./store.js";
import { checkWork, figure, jobWork } from "./work-budget.js";

/**
 * AUTOMATIC1111's X/Y/Z plot through its API: `script_name: "x/y/z plot"` with `script_args` as its script's run()
 * takes them, the axis types as indices into its txt2img or img2img list of axis options (A1111 1.10's). Each cell
 * runs as a job of the queue (so it is in the history, and an interrupt stops the plot between cells); the grid is
 * composed here, watermarked and signed, and answered as A1111 answers: the grid first, then the sub-grids and the
 * cells when asked for, with every cell's infotext in `info`.
 */

export const XYZ_SCRIPT = "x/y/z plot";

/** A1111 1.10's axis options in its order, the page each is for, and our axis where we have it. */
const A1111_AXES: readonly { label: string; only?: "txt2img" | "img2img"; ours?: XyzAxisId; choices?: true }[] = [
  { label: "Nothing", ours: "nothing" },
  { label: "Seed", ours: "seed" },
  { label: "Var. seed", ours: "subseed" },
  { label: "Var. strength", ours: "subseedStrength" },
  { label: "Steps", ours: "steps" },
  { label: "Hires steps", only: "txt2img", ours: "hiresSteps" },
  { label: "CFG Scale", ours: "cfgScale" },
  { label: "Image CFG Scale", only: "img2img" },
  { label: "Prompt S/R", ours: "promptSR" },
  { label: "Prompt order", ours: "promptOrder" },
  { label: "Sampler", only: "txt2img", ours: "sampler", choices: true },
  { label: "Hires sampler", only: "txt2img", ours: "hiresSampler", choices: true },
  { label: "Sampler", only: "img2img", ours: "sampler", choices: true },
  { label: "Checkpoint name", ours: "checkpoint", choices: true },
  { label: "Negative Guidance minimum sigma" },
  { label: "Sigma Churn", ours: "sigmaChurn" },
  { label: "Sigma min", ours: "sigmaMin" },
  { label: "Sigma max", ours: "sigmaMax" },
  { label: "Sigma noise", ours: "sigmaNoise" },
  { label: "Schedule type", ours: "schedule", choices: true },
  { label: "Schedule min sigma" },
  { label: "Schedule max sigma" },
  { label: "Schedule rho" },
  { label: "Beta schedule alpha" },
  { label: "Beta schedule beta" },
  { label: "Eta", ours: "eta" },
  { label: "Clip skip", ours: "clipSkip" },
  { label: "Denoising", ours: "denoising" },
  { label: "Initial noise multiplier" },
  { label: "Extra noise" },
  { label: "Hires upscaler", only: "txt2img", ours: "hiresUpscaler", choices: true },
  { label: "Cond. Image Mask Weight", only: "img2img" },
  { label: "VAE", ours: "vae", choices: true },
  { label: "Styles", choices: true },
  { label: "UniPC Order" },
  { label: "Face restore" },
  { label: "Token merging ratio" },
  { label: "Token merging ratio high-res" },
  { label: "Always discard next-to-last sigma", choices: true },
  { label: "SGM noise multiplier", choices: true },
  { label: "Refiner checkpoint", choices: true },
  { label: "Refiner switch at", ours: "refinerSwitchAt" },
  { label: "RNG source", choices: true },
  { label: "FP8 mode", choices: true },
  { label: "Size", ours: "size" },
];

/** The axis options of one page, in the order its `x_type` indices count them. */
export function a1111AxisOptions(img2img: boolean): typeof A1111_AXES {
  return A1111_AXES.filter((a) => a.only === undefined || a.only === (img2img ? "img2img" : "txt2img"));
}

/** The labels of script_args, in run()'s order (what /sdapi/v1/script-info lists). */
export const XYZ_SCRIPT_ARGS = [
  "X type",
  "X values",
  "X values (dropdown)",
  "Y type",
  "Y values",
  "Y values (dropdown)",
  "Z type",
  "Z values",
  "Z values (dropdown)",
  "Draw legend",
  "Include Sub Images",
  "Include Sub Grids",
  "Keep -1 for seeds",
  "Vary seeds for X",
  "Vary seeds for Y",
  "Vary seeds for Z",
  "Grid margins (px)",
  "Use text inputs instead of dropdowns",
] as const;

interface XyzScriptArgs {
  axes: Partial<Record<AxisLetter, XyzAxisRequest>>;
  drawLegend: boolean;
  includeLoneImages: boolean;
  includeSubGrids: boolean;
  noFixedSeeds: boolean;
  varySeeds: Record<AxisLetter, boolean>;
  margin: number;
}

/** A CSV line of dropdown values, quoted where needed, as A1111 joins them before reading them back. */
function csvLine(values: readonly string[]): string {
  return values.map((v) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v)).join(",");
}

/** script_args read positionally as run() takes them, A1111's defaults for what is missing (its page's). */
export function parseXyzScriptArgs(args: readonly unknown[], img2img: boolean): XyzScriptArgs {
  const options = a1111AxisOptions(img2img);
  const field = (i: number) => `script_args[${i}] (${XYZ_SCRIPT_ARGS[i]})`;
  if (args.length > XYZ_SCRIPT_ARGS.length)
    throw new A1111Error(
      422,
      `script_args: the X/Y/Z plot takes ${XYZ_SCRIPT_ARGS.length} arguments (${XYZ_SCRIPT_ARGS.join(", ")}), not ${args.length}`,
    );
  const bool = (i: number, fallback: boolean) => {
    const v = args[i];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") throw new A1111Error(422, `${field(i)} must be true or false`);
    return v;
  };
  const text = (i: number) => {
    const v = args[i];
    if (v === undefined || v === null) return "";
    if (typeof v !== "string") throw new A1111Error(422, `${field(i)} must be a string`);
    return v;
  };
  const list = (i: number) => {
    const v = args[i];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string"))
      throw new A1111Error(422, `${field(i)} must be a list of strings`);
    return v as string[];
  };
  const csvMode = bool(17, false);
  const axes: Partial<Record<AxisLetter, XyzAxisRequest>> = {};
  (["x", "y", "z"] as const).forEach((letter, n) => {
    const i = n * 3;
    const type = args[i] ?? (letter === "x" ? 1 : 0);
    if (typeof type !== "number" || !Number.isInteger(type) || type < 0 || type >= options.length)
      throw new A1111Error(
        422,
        `${field(i)} must be an index into ${img2img ? "img2img" : "txt2img"}'s axis options, 0 to ${options.length - 1} (0 Nothing, 1 Seed, ...), not ${JSON.stringify(type)}`,
      );
    const option = options[type]!;
    if (option.ours === undefined)
      throw new A1111Error(
        422,
        `${field(i)}: the axis "${option.label}" (${type}) is not available here; these are: ${options
          .map((o, k) => (o.ours ? `${k} ${o.label}` : undefined))
          .filter(Boolean)
          .join(", ")}`,
      );
    if (option.ours === "nothing") return;
    // As A1111: an axis with a list of choices takes its values from the dropdown unless csv_mode says text.
    const values = option.choices && !csvMode ? csvLine(list(i + 2)) : text(i + 1);
    axes[letter] = { axis: option.label, values };
  });
  const margin = args[16] ?? 0;
  if (typeof margin !== "number" || !Number.isInteger(margin) || margin < 0 || margin > 500)
    throw new A1111Error(422, `${field(16)} must be whole pixels from 0 to 500`);
  return {
    axes,
    drawLegend: bool(9, true),
    includeLoneImages: bool(10, false),
    includeSubGrids: bool(11, false),
    noFixedSeeds: bool(12, false),
    varySeeds: { x: bool(13, false), y: bool(14, false), z: bool(15, false) },
    margin,
  };
}

/** The job fields each axis sets, from a cell's request (the library's names back to A1111's). */
function cellJobParams(base: JobParams, cell: XyzPlannedCell, plan: XyzPlan): JobParams {
  const p = cell.params;
  const h = p.hires;
  const seed = (v: unknown) => {
    const s = parseSeed(v ?? RANDOM_SEED);
    return s === RANDOM_SEED ? resolveSeed(-1) : seedToJson(s);
  };
  const out: JobParams = { ...base, seed: seed(p.seed) };
  const set = (fields: Partial<JobParams>) => {
    for (const [k, v] of Object.entries(fields))
      if (v === undefined) delete (out as Record<string, unknown>)[k];
      else (out as Record<string, unknown>)[k] = v;
  };
  for (const { axis } of [plan.x, plan.y, plan.z])
    switch (axis.id) {
      case "subseed":
      case "subseedStrength":
        if (p.subseedStrength) set({ subseed: seed(p.subseed), subseed_strength: p.subseedStrength });
        else set({ subseed: undefined, subseed_strength: p.subseedStrength });
        break;
      case "steps":
        set({ steps: p.steps });
        break;
      case "hiresSteps":
        set({ hr_second_pass_steps: h?.steps });
        break;
      case "cfgScale":
        set({ cfg_scale: p.cfgScale });
        break;
      case "promptSR":
      case "promptOrder":
        set({ prompt: p.prompt, negative_prompt: p.negativePrompt });
        break;
      case "sampler":
        set({ sampler_name: p.sampler });
        break;
      case "hiresSampler":
        set({ hr_sampler_name: h?.sampler });
        break;
      case "sigmaChurn":
        set({ s_churn: p.sChurn });
        break;
      case "sigmaMin":
        set({ s_tmin: p.sTmin });
        break;
      case "sigmaMax":
        set({ s_tmax: p.sTmax });
        break;
      case "sigmaNoise":
        set({ s_noise: p.sNoise });
        break;
      case "schedule":
        set({ scheduler: p.schedule });
        break;
      case "eta":
        set({ eta: p.eta });
        break;
      case "clipSkip":
        set({ clip_skip: p.clipSkip });
        break;
      case "denoising":
        set({ denoising_strength: p.initImage !== undefined ? p.denoisingStrength : h?.denoisingStrength });
        break;
      case "hiresUpscaler":
        set({ hr_upscaler: h?.upscaler });
        break;
      case "vae":
        set({ sd_vae: p.vae === null ? "None" : (p.vae ?? undefined) });
        break;
      case "refinerSwitchAt":
        set({ refiner_switch_at: p.refinerSwitchAt });
        break;
      case "size":
      case "width":
      case "height":
        set({ width: p.width, height: p.height });
        break;
      // The seed is set above, the checkpoint picks the cell's model, and A1111's list offers no LoRA weight axis.
      case "nothing":
      case "seed":
      case "checkpoint":
      case "loraWeight":
        break;
      default: {
        // A new axis must say here which job fields it sets: this fails to compile until it does.
        const unhandled: never = axis.id;
        throw new InternalError(`X/Y/Z plot: no job fields for the axis ${String(unhandled)}`);
      }
    }
  return out;
}

export interface XyzRequestContext {
  ctx: ServerContext;
  img2img: boolean;
  scriptArgs: readonly unknown[];
  type: JobType;
  params: JobParams;
  uploads: Uploads;
  /** The request's own checkpoint (override_settings), if any; the served model otherwise. */
  choice: KnownCheckpoint | undefined;
  /** A checkpoint as A1111 names it, or an A1111Error naming the known ones. */
  findCheckpoint: (name: string) => Promise<KnownCheckpoint>;
  /** An sd_vae value checked (a name /sdapi/v1/sd-vae lists, Automatic or None). */
  checkVae: (name: string) => void;
  describe: (served: ServedModel) => Promise<ModelDescription>;
  styles: readonly string[];
}

export interface XyzResponse {
  images: string[];
  info: string;
  /** The first cell's job and its record, for the response's `parameters`. */
  first: JobRecord | undefined;
}

/** Runs the plot: plans and checks every cell, counts all their work against the budget, runs them, composes. */
export async function runA1111XyzPlot(r: XyzRequestContext): Promise<XyzResponse> {
  const { ctx, uploads } = r;
  const args = parseXyzScriptArgs(r.scriptArgs, r.img2img);
  const checkpoints = new Map<string, KnownCheckpoint>();
  let plan: XyzPlan;
  try {
    plan = await planXyzPlot({
      base: generateParamsOf(r.params, uploads),
      ...args.axes,
      noFixedSeeds: args.noFixedSeeds,
      varySeeds: args.varySeeds,
      randomSeed,
      upscalers: ctx.upscalers.modelNames(),
      checkpoint: async (name) => {
        try {
          const known = await r.findCheckpoint(name);
          checkpoints.set(known.name, known);
          return known.name;
        } catch (e) {
          if (e instanceof A1111Error) throw new InputError(e.message);
          throw e;
        }
      },
      vae: (name) => {
        try {
          r.checkVae(name);
          return name;
        } catch (e) {
          if (e instanceof A1111Error) throw new InputError(e.message);
          throw e;
        }
      },
    });
  } catch (e) {
    if (e instanceof InputError) throw new A1111Error(422, `script_args: ${e.message}`);
    throw e;
  }
  const modelOf = (cell: XyzPlannedCell) => (cell.checkpoint ? checkpoints.get(cell.checkpoint) : r.choice);
  const jobs = plan.cells.map((cell) => ({ cell, params: cellJobParams(r.params, cell, plan) }));
  // Every cell counts: the plot is one request, however many jobs it becomes.
  let total = 0;
  for (const j of jobs)
    total += (await jobWork(ctx, j.params, uploads, ctx.queue.modelFor(modelOf(j.cell)))).megapixelSteps;
  checkWork(
    ctx,
    total,
    `this X/Y/Z plot asks for ${figure(total)} megapixel-steps of work over its ${jobs.length} cells ` +
      `(${plan.x.values.length} x ${plan.y.values.length} x ${plan.z.values.length})`,
  );
  const byCell = new Map(jobs.map((j) => [j.cell, j.params]));
  let stopped = false;
  const done = await runXyzPlot(plan, async (cell) => {
    if (stopped) return undefined;
    const choice = modelOf(cell);
    const accepted = await ctx.queue.submit({
      type: r.type,
      params: byCell.get(cell)!,
      source: "a1111",
      uploads,
      ...(choice ? { model: choice.name } : {}),
    });
    const job = await ctx.queue.whenFinished(accepted.id);
    // An interrupt stops the plot there, as A1111's: the cells not run stay empty in the grid.
    if (job.state === "cancelled") {
      stopped = true;
      return undefined;
    }
    if (job.state === "failed")
      throw new A1111Error(422, `X/Y/Z plot cell ${cell.index + 1} of ${plan.cells.length}: ${job.error ?? "failed"}`);
    return { job, images: ctx.store.imagesOf([job.id]).get(job.id) ?? [] };
  });
  const cellImages: (ImageRecord | undefined)[] = done.map((d) => d?.images[0]);
  const pngs = await Promise.all(cellImages.map((i) => (i ? ctx.files.read(i.id) : undefined)));
  const pixels: (RgbImage | undefined)[] = await Promise.all(
    pngs.map((b, i) => (b ? decodeImage(b, { name: `cell ${i + 1}` }) : undefined)),
  );
  const title = [plan.x, plan.y, plan.z]
    .filter((a) => a.axis.id !== "nothing")
    .map((a) => `${a.letter.toUpperCase()}: ${a.axis.label}`)
    .join("  ");
  const { grid, subGrids } = composeGrid(
    pixels,
    { x: plan.x.labels, y: plan.y.labels, z: plan.z.labels },
    { legend: args.drawLegend, margin: args.margin, title },
  );
  const firstIndex = done.findIndex((d) => d !== undefined);
  const first = firstIndex >= 0 ? done[firstIndex]! : undefined;
  const firstInfotext = cellImages[firstIndex]?.infotext ?? "";
  const model = await r.describe(
    ctx.queue.modelFor(first ? modelOf(plan.cells.find((c) => c.index === firstIndex)!) : r.choice),
  );
  const load = ctx.config.loadOptions ?? {};
  const finish = (image: RgbImage, infotext: string) =>
    finishComposedImage(
      image,
      infotext,
      {
        model: `${model.name} [${model.hash}]`,
        sampler: first?.job.params.sampler_name ?? "X/Y/Z plot",
        prompt: first?.job.params.prompt,
        ...(cellImages[firstIndex] ? { seed: cellImages[firstIndex]!.seed } : {}),
      },
      "png",
      { watermark: load.watermark !== false, provenance: load.provenance ?? true },
    );
  const gridText = gridInfotext(firstInfotext, plan);
  const nxy = plan.x.values.length * plan.y.values.length;
  const subTexts = subGrids.map((_, iz) => gridInfotext(cellImages[iz * nxy]?.infotext ?? firstInfotext, plan));
  const main = await finish(grid, gridText);
  const images: string[] = [main.bytes.toString("base64")];
  const written = [main.infotext];
  if (args.includeSubGrids && subGrids.length > 1)
    for (const [iz, g] of subGrids.entries()) {
      const sub = await finish(g, subTexts[iz]!);
      images.push(sub.bytes.toString("base64"));
      written.push(sub.infotext);
    }
  if (args.includeLoneImages) for (const b of pngs) if (b) images.push(b.toString("base64"));

  // `info` as A1111's: the first cell's fields, with every cell's prompt, seed and infotext after the grids'.
  const base = first
    ? a1111InfoFields(first.job, first.images, model, r.styles)
    : { prompt: r.params.prompt, infotexts: [] as string[] };
  const ran = done.filter((d) => d !== undefined);
  const withSubGrids = args.includeSubGrids && subGrids.length > 1;
  const info = {
    ...base,
    all_prompts: [
      ...(withSubGrids ? subGrids.map((_, iz) => done[iz * nxy]?.job.params.prompt ?? "") : []),
      ...ran.map((d) => d.job.params.prompt),
    ],
    all_seeds: [
      ...(withSubGrids ? subGrids.map((_, iz) => cellImages[iz * nxy]?.seed ?? 0n) : []),
      ...ran.map((d) => d.images[0]?.seed ?? BigInt(d.job.params.seed)),
    ],
    infotexts: [...written, ...ran.map((d) => d.images[0]?.infotext ?? "")],
    index_of_first_image: 1,
  };
  return { images, info: stringifyExact(info), first: first?.job };
}
