import { accessSync, constants, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { InputError } from "../index.js";

/** The environment variable that moves the outputs folder, for every run, as --outdir does for one. */
export const OUTDIR_ENV = "DIFFUSE_OUTDIR";
const DEFAULT_OUTDIR = "outputs";

/** A1111's outputs folders: images by kind, and the grids (X/Y/Z plots) beside them. */
export type OutputKind = "txt2img" | "img2img" | "txt2img-grids" | "img2img-grids";

/** The outputs folder: --outdir, else $DIFFUSE_OUTDIR, else ./outputs (relative to the working directory). */
export function outputFolder(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(option ?? (env[OUTDIR_ENV] || DEFAULT_OUTDIR));
}

/**
 * AUTOMATIC1111's file names: OUTDIR/KIND/YYYY-MM-DD/NNNNN-SEED.png, numbered on from the highest number already in
 * the day's folder (not the count of files, so a deleted file never makes a number come twice). With `create` the
 * folder is made (just before writing, so a run that finished meanwhile is counted); without, only checked, so a run
 * refused later leaves no empty folders behind.
 */
export function numberedPaths(
  outdir: string,
  kind: OutputKind,
  seeds: readonly (bigint | string)[],
  create: boolean,
  now = new Date(),
): string[] {
  const folder = join(outdir, kind, localDate(now));
  if (create) makeFolder(folder);
  else checkCreatable(folder);
  const next = existsSync(folder) ? nextNumber(readdirSync(folder)) : 0;
  return seeds.map((seed, i) => join(folder, `${String(next + i).padStart(5, "0")}-${seed}.png`));
}

/** Throws an InputError unless `folder` exists as a folder or can be created: its nearest existing ancestor is. */
function checkCreatable(folder: string): void {
  let at = folder;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  const fix = `pass --outdir DIR (or set ${OUTDIR_ENV}) to a folder you can write, or -o FILE`;
  if (!statSync(at).isDirectory())
    throw new InputError(`cannot create the outputs folder ${folder}: ${at} is a file; ${fix}`);
  try {
    accessSync(at, constants.W_OK);
  } catch {
    throw new InputError(`cannot create the outputs folder ${folder}: ${at} is not writable; ${fix}`);
  }
}

function makeFolder(folder: string): void {
  try {
    mkdirSync(folder, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new InputError(
      `cannot create the outputs folder ${folder} (${code}): pass --outdir DIR (or set ${OUTDIR_ENV}) to a folder you can write, or -o FILE`,
    );
  }
}

/** One past the highest leading number among `names` ("00012-123.png" counts 12); 0 in an empty folder. */
export function nextNumber(names: readonly string[]): number {
  let highest = -1;
  for (const name of names) {
    const m = /^(\d+)-/.exec(name);
    if (m) highest = Math.max(highest, Number(m[1]));
  }
  return highest + 1;
}

function localDate(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
}
