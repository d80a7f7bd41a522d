import { PREPROCESSORS, findPreprocessor } from "../control/preprocessors.js";
import type { Preprocessor } from "../control/preprocessor.js";
import { MAX_CONTROL_UNITS } from "../pipeline/params.js";
import type { ControlNetUnitParams } from "./api-types.js";
import { findControlNet, listControlNets } from "./controlnet-models.js";
import { HttpError } from "./http-errors.js";
import { readImageUpload } from "./uploads.js";

/** A ControlNet unit as a request gives it: its parameters and its control image as base64. */
export type ControlUnitUpload = ControlNetUnitParams & { image: string };

/** The units of an accepted job: parameters as the job records them, and their control images (screened bytes). */
export interface AcceptedControl {
  units: ControlNetUnitParams[];
  images: Uint8Array[];
}

/**
 * ControlNet units checked at acceptance, on either API: each module is a preprocessor we have and each model a
 * ControlNet the server serves (`serve --controlnet-dir`, as /controlnet/model_list lists them), else a 422 naming
 * the valid ones; each image is screened as an init image is. The job records the model by its title and the module
 * by its canonical name, so a re-run after a restart finds the same ones. `field(i)` names unit i in messages.
 */
export async function acceptControlUnits(
  units: readonly ControlUnitUpload[],
  dirs: readonly string[],
  field: (i: number) => string,
): Promise<AcceptedControl> {
  if (units.length > MAX_CONTROL_UNITS) {
    throw new HttpError(
      400,
      "invalid_request",
      `${units.length} ControlNet units: send at most ${MAX_CONTROL_UNITS}`,
      field(MAX_CONTROL_UNITS),
    );
  }
  const served = units.length ? listControlNets(dirs) : [];
  const accepted: AcceptedControl = { units: [], images: [] };
  for (const [i, { image, ...u }] of units.entries()) {
    const pre = preprocessorOf(u.module ?? "none", `${field(i)}.module`);
    const model = findControlNet(served, u.model);
    if (!model) {
      const valid = served.length
        ? `the ControlNets this server serves are ${served.map((c) => JSON.stringify(c.title)).join(", ")} (GET /controlnet/model_list)`
        : "this server serves none: start it with diffuse serve --controlnet-dir DIR (a folder of ControlNets)";
      throw new HttpError(
        422,
        "unknown_controlnet",
        `${field(i)}.model: no ControlNet ${JSON.stringify(u.model)}; ${valid}`,
        `${field(i)}.model`,
      );
    }
    accepted.units.push({ ...u, model: model.title, module: pre.name });
    accepted.images.push(await readImageUpload(image, `${field(i)}.image`));
  }
  return accepted;
}

function preprocessorOf(module: string, field: string): Preprocessor {
  try {
    return findPreprocessor(module);
  } catch {
    const names = PREPROCESSORS.map((p) => p.name).join(", ");
    throw new HttpError(
      422,
      "unknown_module",
      `${field}: no ControlNet module ${JSON.stringify(module)}; the modules are ${names} (GET /controlnet/module_list)`,
      field,
    );
  }
}
