import { InputError } from "../errors.js";
import { quoteInfotextValue } from "../image/infotext.js";
import { RANDOM_SEED, parseSeed } from "../random/seed.js";
import { createScheduler } from "../schedulers/index.js";
import { GenerationAborted } from "./generation-aborted.js";
import { type GenerateParams, resolveParams } from "./params.js";
import { findXyzAxis, type XyzAxis, type XyzCell, type XyzValue } from "./xyz-axes.js";
import { splitAxisValues } from "./xyz-values.js";

/**
 * AUTOMATIC1111's X/Y/Z plot: one request varied over up to three axes, one generation per cell. Planning reads and
 * checks every axis and every cell's request before anything runs, so a bad value fails at once, naming its axis;
 * running walks the cells in A1111's order (z, then y, then x, the costliest axis outermost) and stops between cells
 * when cancelled.
 */

export type AxisLetter = "x" | "y" | "z";
const LETTERS: readonly AxisLetter[] = ["x", "y", "z"];

/** An axis as asked: its name (A1111's label or a short form) and its value text (`"3,5,7"`, `"1-10 [5]"`). */
export interface XyzAxisRequest {
  axis: string;
  values: string;
}

export interface XyzPlotRequest {
  /** The request every cell starts from. */
  base: GenerateParams;
  x?: XyzAxisRequest;
  y?: XyzAxisRequest;
  z?: XyzAxisRequest;
  /**
   * A1111's "Keep -1 for seeds": false (the default) draws a random seed once for every cell (and once per -1 of a
   * Seed axis), so the cells differ only by their axes; true leaves each cell its own random seed.
   */
  noFixedSeeds?: boolean;
  /** A1111's vary_seeds_x/y/z: the seed grows by the cell's index along that axis (times the axes inside it). */
  varySeeds?: Partial<Record<AxisLetter, boolean>>;
  /** Where random seeds come from (-1 resolved). */
  randomSeed: () => bigint;
  /**
   * Resolves a Checkpoint name value to what the caller loads (a path), or throws an InputError naming the known
   * ones; without it the Checkpoint name axis is refused.
   */
  checkpoint?: (name: string) => Promise<string> | string;
  /** Resolves a VAE value (not Automatic or None) to a file or folder, or throws; without it the value is a path. */
  vae?: (name: string) => Promise<string> | string;
  /** The pixel upscalers the hires fix may name besides the built-in ones (for the cells' checks). */
  upscalers?: readonly string[];
}

export interface XyzPlotAxis {
  letter: AxisLetter;
  axis: XyzAxis;
  /** The text as given (the infotext's "X Values"). */
  text: string;
  values: XyzValue[];
  labels: string[];
}

export interface XyzPlannedCell extends XyzCell {
  /** Index in the grid: x + y * xs + z * xs * ys. */
  index: number;
  ix: number;
  iy: number;
  iz: number;
}

export interface XyzPlan {
  x: XyzPlotAxis;
  y: XyzPlotAxis;
  z: XyzPlotAxis;
  /** The cells in the order they run (A1111's: z, y, x nesting unless a costlier axis goes outermost). */
  cells: XyzPlannedCell[];
  /** The script's infotext fields (A1111's "Script", "X Type", "X Values", ...), for the grid's infotext. */
  infotext: Record<string, string>;
}

/** Cells in one plot: past this, a grid image is larger than anyone looks at, and the run lasts hours. */
export const MAX_XYZ_CELLS = 1000;

export async function planXyzPlot(req: XyzPlotRequest): Promise<XyzPlan> {
  const axes = {} as Record<AxisLetter, XyzPlotAxis>;
  for (const letter of LETTERS) {
    const asked = req[letter];
    const where = `X/Y/Z plot: ${letter.toUpperCase()} axis`;
    const axis = findXyzAxis(asked?.axis ?? "Nothing", where);
    const named = `${where} (${axis.label})`;
    const text = asked?.values ?? "";
    const values = axis.id === "nothing" ? [""] : axis.parse(splitAxisValues(text, named), named);
    if (values.length === 0)
      throw new InputError(`${named} has no values: give them comma-separated, e.g. ${letter}="${axis.label}=1,2,3"`);
    axis.check?.(values, req.base, named);
    axes[letter] = { letter, axis, text, values, labels: values.map((v) => axis.format(v)) };
  }
  const used = LETTERS.filter((l) => axes[l].axis.id !== "nothing");
  for (const [i, a] of used.entries())
    for (const b of used.slice(i + 1))
      if (axes[a].axis.id === axes[b].axis.id)
        throw new InputError(
          `X/Y/Z plot: the ${a.toUpperCase()} and ${b.toUpperCase()} axes are both ${axes[a].axis.label}: put all its values on one axis`,
        );
  const { x, y, z } = axes;
  const count = x.values.length * y.values.length * z.values.length;
  if (count > MAX_XYZ_CELLS)
    throw new InputError(
      `X/Y/Z plot: ${x.values.length} x ${y.values.length} x ${z.values.length} = ${count} cells, over ${MAX_XYZ_CELLS}: give fewer values`,
    );

  const base: GenerateParams = { ...req.base };
  const fixedSeeds = !req.noFixedSeeds;
  // A1111's fix_seed: -1 drawn once, so every cell starts from the same noise unless an axis varies it.
  if (fixedSeeds) {
    if (parseSeed(base.seed ?? RANDOM_SEED) === RANDOM_SEED) base.seed = req.randomSeed();
    if (base.subseedStrength && parseSeed(base.subseed ?? RANDOM_SEED, "variation seed") === RANDOM_SEED)
      base.subseed = req.randomSeed();
    for (const a of [x, y, z])
      if (a.axis.id === "seed" || a.axis.id === "subseed") {
        a.values = a.values.map((v) => (v === RANDOM_SEED ? req.randomSeed() : v));
        a.labels = a.values.map((v) => a.axis.format(v));
      }
  }
  const resolved = new Map<string, string>();
  const resolveName = async (kind: "checkpoint" | "vae", a: XyzPlotAxis, v: string) => {
    const key = `${kind}\0${v}`;
    if (!resolved.has(key)) {
      const hook = req[kind];
      if (kind === "checkpoint" && !hook)
        throw new InputError(
          `X/Y/Z plot: ${a.letter.toUpperCase()} axis (Checkpoint name): this caller cannot load other checkpoints`,
        );
      try {
        resolved.set(key, hook ? await hook(v) : v);
      } catch (e) {
        if (e instanceof InputError)
          throw new InputError(
            `X/Y/Z plot: ${a.letter.toUpperCase()} axis (${a.axis.label}) value ${JSON.stringify(v)}: ${e.message}`,
          );
        throw e;
      }
    }
    return resolved.get(key)!;
  };

  const cells: XyzPlannedCell[] = [];
  const [outer, middle, inner] = runOrder(x.axis, y.axis, z.axis);
  const sizes = { x: x.values.length, y: y.values.length, z: z.values.length };
  const at = { x: 0, y: 0, z: 0 };
  for (at[outer] = 0; at[outer] < sizes[outer]; at[outer]++)
    for (at[middle] = 0; at[middle] < sizes[middle]; at[middle]++)
      for (at[inner] = 0; at[inner] < sizes[inner]; at[inner]++) {
        const { x: ix, y: iy, z: iz } = at;
        const cell: XyzPlannedCell = {
          params: { ...base, ...(base.loras ? { loras: base.loras.map((l) => ({ ...l })) } : {}) },
          index: ix + iy * sizes.x + iz * sizes.x * sizes.y,
          ix,
          iy,
          iz,
        };
        for (const [a, i] of [
          [x, ix],
          [y, iy],
          [z, iz],
        ] as const) {
          const value = a.values[i]!;
          a.axis.apply(cell, value, a.values);
          if (a.axis.id === "checkpoint") cell.checkpoint = await resolveName("checkpoint", a, value as string);
          if (a.axis.id === "vae" && typeof cell.params.vae === "string")
            cell.params.vae = await resolveName("vae", a, cell.params.vae);
        }
        varySeed(cell, req.varySeeds ?? {}, sizes);
        checkCell(cell, [x, y, z], [ix, iy, iz], req.upscalers);
        cells.push(cell);
      }

  const infotext: Record<string, string> = { Script: "X/Y/Z plot" };
  for (const a of [x, y, z]) {
    if (a.axis.id === "nothing") continue;
    const L = a.letter.toUpperCase();
    infotext[`${L} Type`] = a.axis.label;
    infotext[`${L} Values`] = a.text;
    if (fixedSeeds && (a.axis.id === "seed" || a.axis.id === "subseed"))
      infotext[`Fixed ${L} Values`] = a.values.map(String).join(", ");
  }
  return { x, y, z, cells, infotext };
}

/**
 * A1111's loop order: z outermost, then y, then x; an axis whose changes cost more than both others' (a checkpoint,
 * a VAE) goes outermost, and the costlier of the two others next.
 */
function runOrder(x: XyzAxis, y: XyzAxis, z: XyzAxis): [AxisLetter, AxisLetter, AxisLetter] {
  if (x.cost > y.cost && x.cost > z.cost) return y.cost > z.cost ? ["x", "y", "z"] : ["x", "z", "y"];
  if (y.cost > x.cost && y.cost > z.cost) return x.cost > z.cost ? ["y", "x", "z"] : ["y", "z", "x"];
  if (z.cost > x.cost && z.cost > y.cost) return x.cost > y.cost ? ["z", "x", "y"] : ["z", "y", "x"];
  return ["z", "y", "x"];
}

/** A1111's vary_seeds_*: seed + ix, + iy x (xs when x varies), + iz x (xs x ys of the varying ones). */
function varySeed(
  cell: XyzPlannedCell,
  vary: Partial<Record<AxisLetter, boolean>>,
  sizes: Record<AxisLetter, number>,
): void {
  if (!vary.x && !vary.y && !vary.z) return;
  const seed = parseSeed(cell.params.seed ?? RANDOM_SEED);
  if (seed === RANDOM_SEED) return;
  const xdim = vary.x ? sizes.x : 1;
  const ydim = vary.y ? sizes.y : 1;
  const offset = (vary.x ? cell.ix : 0) + (vary.y ? cell.iy * xdim : 0) + (vary.z ? cell.iz * xdim * ydim : 0);
  cell.params.seed = seed + BigInt(offset);
}

/**
 * Each cell's request checked as the pipeline will check it (sizes, ranges, sampler and schedule type), so that a
 * value no cell can run is refused before the first one runs, with the axis values of the cell named.
 */
function checkCell(
  cell: XyzPlannedCell,
  axes: readonly XyzPlotAxis[],
  at: readonly number[],
  upscalers: readonly string[] | undefined,
): void {
  try {
    const p = resolveParams(cell.params, {
      size: 512,
      // The refiner is the caller's to check; the cell's value is checked for its range here.
      refinerSwitchAt: cell.params.refinerSwitchAt,
      randomSeed: () => 0n,
      upscalers: upscalers ?? [],
    });
    createScheduler(p.sampler, undefined, { schedule: p.schedule }).setTimesteps(p.steps);
    if (p.hires) createScheduler(p.hires.sampler, undefined, { schedule: p.hires.schedule }).setTimesteps(1);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    const named = axes
      .map((a, i) =>
        a.axis.id === "nothing"
          ? undefined
          : `${a.letter.toUpperCase()} ${a.axis.label} = ${JSON.stringify(String(a.values[at[i]!]))}`,
      )
      .filter((s) => s !== undefined)
      .join(", ");
    throw new InputError(`X/Y/Z plot: the cell ${named} cannot run: ${e.message}`);
  }
}

/** What running a cell gives back (the pipeline's GenerateResult, or what a server makes of a finished job). */
export interface XyzCellOutcome<R> {
  cell: XyzPlannedCell;
  result: R;
}

export interface XyzRunOptions {
  /** Checked between cells: once aborted, the run throws GenerationAborted (the cell in progress sees it too). */
  signal?: AbortSignal;
  /** Before each cell: it is the k-th (1-based) of n. */
  onCell?: (k: number, n: number, cell: XyzPlannedCell) => void;
}

/** Runs the cells in order, one at a time; the results come back indexed by grid position (XyzPlannedCell.index). */
export async function runXyzPlot<R>(
  plan: XyzPlan,
  generate: (cell: XyzPlannedCell) => Promise<R>,
  options: XyzRunOptions = {},
): Promise<R[]> {
  const out: R[] = new Array(plan.cells.length);
  const n = plan.cells.length;
  for (const [i, cell] of plan.cells.entries()) {
    if (options.signal?.aborted) throw new GenerationAborted();
    options.onCell?.(i + 1, n, cell);
    out[cell.index] = await generate(cell);
  }
  return out;
}

/** The grid's infotext: its first cell's, with the script's fields (A1111 writes them on the grid). */
export function gridInfotext(firstCellInfotext: string, plan: Pick<XyzPlan, "infotext">): string {
  const extra = Object.entries(plan.infotext)
    .map(([k, v]) => `${k}: ${quoteInfotextValue(v)}`)
    .join(", ");
  const lines = firstCellInfotext.split("\n");
  lines[lines.length - 1] = `${lines[lines.length - 1]}, ${extra}`;
  return lines.join("\n");
}
