import { createHash, randomBytes } from "node:crypto";
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InputError, InternalError } from "../errors.js";
import type { Int8Network } from "../models/precision.js";
import type { ActivationRanges, Range } from "../onnx/activation-ranges.js";
import type { Graph } from "../onnx/graph.js";
import { graphStructure } from "../onnx/serialize.js";
import { readJsonFile } from "../regular-file.js";
import type { Checkpoint } from "../weights/checkpoint.js";

/**
 * The int8 calibration a model folder ships (`diffuse calibrate` writes it): the activation ranges of each int8
 * network, so that a user's first int8 load reads them instead of measuring them (minutes for a full-size model).
 *
 * The file, JSON:
 * ```
 * { "format": "diffuse-int8-calibration", "version": 2,
 *   "modelSha256": "<sha256 of the model's files, as diffuse hashes them>",
 *   "measuredWith": { "sampler": "Euler", "prompts": [...], "steps": 8, "cfgScale": 7, "width": 256, "height": 256 },
 *   "networks": { "unet": { "graph": "<digest>", "ranges": { "<tensor>": { "min": -1.5, "max": 2.25 }, ... } },
 *                 "vae_decoder": { ... } } }
 * ```
 * The ranges are named by tensors of diffuse's fp32 graph of the network; `graph` is a digest of that graph's
 * structure (fp32GraphDigest), so they are used only with the graph they were measured on, whatever version of
 * diffuse built it. A file for other weights or another graph is ignored (and said so), never trusted.
 */

export const CALIBRATION_FORMAT = "diffuse-int8-calibration";
/**
 * 2: the ranges are where each tensor is clipped for the least 8-bit error (onnx/activation-ranges.ts clippedRange);
 * version 1's were each tensor's full extent, and such a file is stale (measured again).
 */
export const CALIBRATION_VERSION = 2;
/** The file's name in a diffusers folder; beside a single file, the file's name plus SINGLE_FILE_SUFFIX. */
export const SHIPPED_CALIBRATION_FILE = "diffuse-int8-calibration.json";
export const SINGLE_FILE_SUFFIX = ".int8-calibration.json";
/**
 * A full-size SDXL's file is well under a megabyte (two numbers for a few hundred tensors); the bound keeps a wrong
 * or hostile file from being read into memory whole before it is looked at.
 */
export const MAX_SHIPPED_CALIBRATION_BYTES = 16 * 2 ** 20;

/** How the ranges were measured (int8-calibration.ts): what a reader of the file needs to judge them. */
export interface CalibrationRecipe {
  readonly sampler: string;
  readonly prompts: readonly string[];
  readonly steps: number;
  readonly cfgScale: number;
  readonly width: number;
  readonly height: number;
}

/** One network's part of the file. */
export interface ShippedNetwork {
  /** fp32GraphDigest of the fp32 graph the tensor names refer to. */
  readonly graph: string;
  readonly ranges: ActivationRanges;
}

export interface ShippedCalibration {
  readonly modelSha256: string;
  readonly measuredWith: CalibrationRecipe;
  readonly networks: Partial<Record<Int8Network, ShippedNetwork>>;
}

/** Where a model's shipped calibration lies: in a diffusers folder, or beside a single file. */
export function shippedCalibrationPath(checkpoint: Pick<Checkpoint, "path" | "layout">): string {
  return checkpoint.layout === "diffusers"
    ? join(checkpoint.path, SHIPPED_CALIBRATION_FILE)
    : `${checkpoint.path}${SINGLE_FILE_SUFFIX}`;
}

/**
 * A digest of an fp32 graph's structure (nodes, tensor names, shapes, constants; not its large weights, which the
 * model's hash covers): two graphs with the same digest compute the same tensors under the same names.
 */
export function fp32GraphDigest(graph: Graph): string {
  return createHash("sha256")
    .update(`${CALIBRATION_FORMAT} fp32 graph\0`)
    .update(graphStructure(graph))
    .digest("hex")
    .slice(0, 32);
}

/** What a model's shipped file offers a network: nothing (no file), a reason it does not apply, or its ranges. */
export type ShippedRanges =
  | { readonly kind: "absent" }
  | { readonly kind: "stale"; readonly reason: string }
  | { readonly kind: "valid"; readonly ranges: ActivationRanges };

export interface ShippedFor {
  readonly modelSha256: string;
  readonly network: Int8Network;
  /** fp32GraphDigest of this diffuse's fp32 graph of the network (asked only when the rest matches). */
  readonly graph: () => string;
  /** The tensors the int8 form quantizes now: the file must have a range for each. */
  readonly tensors: readonly string[];
}

/**
 * The ranges `file` holds for a network, if it applies to this model and this graph. A file that is not one (bad
 * JSON, a range that is not two finite numbers in order, too large) is an InputError naming it: the folder's
 * publisher has to fix or remove it. One of another model, graph or format version is only stale.
 */
export function shippedRanges(file: string, want: ShippedFor): ShippedRanges {
  if (!existsSync(file)) return { kind: "absent" };
  const hint = `write it again with \`diffuse calibrate --model MODEL --out ${file}\`, or delete it`;
  const parsed = readJsonFile(file, InputError, { hint, maxBytes: MAX_SHIPPED_CALIBRATION_BYTES });
  const bad = (what: string): never => {
    throw new InputError(`${file} is not a diffuse int8 calibration: ${what}; ${hint}`);
  };
  if (!isObject(parsed) || parsed.format !== CALIBRATION_FORMAT) bad(`"format" is not "${CALIBRATION_FORMAT}"`);
  const doc = parsed as Record<string, unknown>;
  if (!Number.isInteger(doc.version)) bad('"version" is not an integer');
  if (doc.version !== CALIBRATION_VERSION)
    return {
      kind: "stale",
      reason: `it is format version ${String(doc.version)}, and this diffuse reads version ${CALIBRATION_VERSION}`,
    };
  if (typeof doc.modelSha256 !== "string" || !/^[0-9a-f]{64}$/.test(doc.modelSha256))
    bad('"modelSha256" is not a sha256 (64 hex digits)');
  if (!isObject(doc.networks)) bad('"networks" is not an object');
  const networks = doc.networks as Record<string, unknown>;
  // Every network is checked, so that a broken file is refused whichever network is loaded first.
  const parsedNetworks = new Map<string, { graph: string; ranges: Map<string, Range> }>();
  for (const [name, entry] of Object.entries(networks)) parsedNetworks.set(name, parseNetwork(name, entry, bad));
  if (doc.modelSha256 !== want.modelSha256)
    return {
      kind: "stale",
      reason:
        `it was measured on other weights (sha256 ${(doc.modelSha256 as string).slice(0, 12)}…, ` +
        `this model's ${want.modelSha256.slice(0, 12)}…)`,
    };
  const mine = parsedNetworks.get(want.network);
  if (!mine) return { kind: "stale", reason: `it has no ranges for the ${want.network}` };
  if (mine.graph !== want.graph())
    return {
      kind: "stale",
      reason:
        `its ${want.network} ranges name the tensors of another fp32 graph (graph ${mine.graph.slice(0, 12)}…, ` +
        `this diffuse builds ${want.graph().slice(0, 12)}…: another diffuse version or attention kind)`,
    };
  const missing = want.tensors.filter((t) => !mine.ranges.has(t));
  if (missing.length > 0)
    return {
      kind: "stale",
      reason:
        `it lacks the ranges of ${missing.length} tensors the int8 ${want.network} quantizes now ` +
        `(${missing[0]}, …): measured for another diffuse version's int8 layers`,
    };
  return { kind: "valid", ranges: mine.ranges };
}

/** Writes the file whole or not at all (under a temporary name beside it, then renamed). */
export function writeShippedCalibration(file: string, calibration: ShippedCalibration): void {
  for (const [name, n] of Object.entries(calibration.networks))
    for (const [tensor, r] of n.ranges)
      if (!(Number.isFinite(r.min) && Number.isFinite(r.max) && r.min <= r.max))
        throw new InternalError(`the ${name}'s calibration measured ${tensor} as [${r.min}, ${r.max}]: not a range`);
  const networks = Object.fromEntries(
    Object.entries(calibration.networks).map(([name, n]) => [
      name,
      { graph: n.graph, ranges: Object.fromEntries(n.ranges) },
    ]),
  );
  const doc = {
    format: CALIBRATION_FORMAT,
    version: CALIBRATION_VERSION,
    modelSha256: calibration.modelSha256,
    measuredWith: calibration.measuredWith,
    networks,
  };
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(doc, null, 1)}\n`);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function parseNetwork(
  name: string,
  entry: unknown,
  bad: (what: string) => never,
): { graph: string; ranges: Map<string, Range> } {
  if (!isObject(entry) || typeof entry.graph !== "string" || !isObject(entry.ranges))
    bad(`networks.${name} is not {"graph": "<digest>", "ranges": {...}}`);
  const { graph, ranges } = entry as { graph: string; ranges: Record<string, unknown> };
  const out = new Map<string, Range>();
  for (const [tensor, r] of Object.entries(ranges)) {
    const ok =
      isObject(r) &&
      typeof r.min === "number" &&
      typeof r.max === "number" &&
      Number.isFinite(r.min) &&
      Number.isFinite(r.max) &&
      r.min <= r.max;
    if (!ok) {
      // Not JSON.stringify: it writes an overflowing 1e999 (Infinity once parsed) as null.
      const found = isObject(r) ? `{min: ${String(r.min)}, max: ${String(r.max)}}` : JSON.stringify(r);
      bad(
        `networks.${name}.ranges[${JSON.stringify(tensor)}] is ${found}, expected {"min": a, "max": b}, finite, a <= b`,
      );
    }
    const { min, max } = r as unknown as Range;
    out.set(tensor, { min, max });
  }
  return { graph, ranges: out };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
