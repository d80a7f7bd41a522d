import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { InputError } from "../errors.js";
import { INT8_NETWORKS, type Int8Network } from "../models/precision.js";
import { calibrationRecipe } from "./int8-calibration.js";
import { shippedCalibrationPath, writeShippedCalibration, type ShippedNetwork } from "./int8-shipped-calibration.js";
import { loadPipeline, type LoadOptions } from "./load-pipeline.js";

export interface CalibrationExportOptions extends Omit<LoadOptions, "precision" | "calibrate"> {
  /**
   * Where to write the file (default: where an int8 load looks for it, beside the model: diffuse-int8-calibration.json
   * in a diffusers folder, `<file>.int8-calibration.json` beside a single file).
   */
  out?: string;
}

export interface CalibrationExport {
  /** The file written. */
  file: string;
  /** The model's sha256, which the file is valid for. */
  modelSha256: string;
  /** How many tensors' ranges each network has. */
  tensors: Record<Int8Network, number>;
}

/**
 * Writes a model's int8 calibration as its folder can ship it (int8-shipped-calibration.ts): the ranges the compile
 * cache holds for it, or measured now as a first int8 load would (minutes for a full-size model on a few cores).
 */
export async function exportInt8Calibration(
  model: string,
  opts: CalibrationExportOptions = {},
): Promise<CalibrationExport> {
  if (opts.out !== undefined) checkTarget(opts.out);
  // Nothing is generated: the safeguards, which would load the safety checker, have nothing to do.
  const pipe = await loadPipeline(model, {
    ...opts,
    precision: "int8",
    safetyChecker: false,
    watermark: false,
    provenance: false,
  });
  try {
    const { networks } = pipe;
    const file = opts.out ?? shippedCalibrationPath(networks.checkpoint);
    if (opts.out === undefined) checkTarget(file);
    const parts: Partial<Record<Int8Network, ShippedNetwork>> = {};
    for (const form of INT8_NETWORKS) parts[form] = await networks.int8Calibration(form);
    writeShippedCalibration(file, {
      modelSha256: networks.sha256,
      measuredWith: calibrationRecipe(networks.checkpoint.config),
      networks: parts,
    });
    const tensors = Object.fromEntries(INT8_NETWORKS.map((n) => [n, parts[n]!.ranges.size]));
    return { file, modelSha256: networks.sha256, tensors: tensors as Record<Int8Network, number> };
  } finally {
    await pipe.close();
  }
}

/** Refuses, before any work, a target that cannot become the file: a folder, or in a folder that does not exist. */
function checkTarget(file: string): void {
  const folder = dirname(resolve(file));
  if (!existsSync(folder) || !statSync(folder).isDirectory())
    throw new InputError(`${file}: the folder ${folder} does not exist; create it or pass another --out`);
  if (existsSync(file) && !statSync(file).isFile())
    throw new InputError(`${file} is not a regular file; pass --out with the path of a .json file to write`);
}
