import { existsSync } from "node:fs";
import type { Command } from "commander";
import { type ControlNetUnit, embeddedControlNetPath, InputError } from "../index.js";
import { collect } from "./repeatable.js";

/** The ControlNet flags as commander collects them: each repeatable, in the order given. */
export interface ControlOptions {
  control: string[];
  controlModel: string[];
  controlType: string[];
  controlScale: string[];
  controlStart: string[];
  controlEnd: string[];
  controlConfig: string[];
}

/**
 * A --control-model value as a path: a file or folder as it is, else the short name of a ControlNet shipped with the
 * embedded model (tiny-shapes-scribble), else a name the store resolves (a catalogue name such as
 * controlnet-scribble-sd15, a repository in the Hugging Face cache); an InputError naming the flag otherwise.
 */
export async function controlModelPath(value: string, resolve: (name: string) => Promise<string>): Promise<string> {
  if (existsSync(value)) return value;
  const embedded = embeddedControlNetPath(value);
  if (embedded !== undefined) return embedded;
  try {
    return await resolve(value);
  } catch (e) {
    throw new InputError(
      `--control-model ${value}: not found (${(e as Error).message}); pass a ControlNet or T2I-Adapter .safetensors file, a diffusers ControlNet or T2IAdapter folder, or a store name (diffuse pull controlnet-scribble-sd15)`,
    );
  }
}

/** Adds the ControlNet flags to a command (generate). */
export function addControlOptions(command: Command): Command {
  return command
    .option(
      "--control <image>",
      "a control image (a sketch, a photo, or a ready map); repeat for several ControlNets",
      collect,
      [],
    )
    .option(
      "--control-model <path>",
      "the ControlNet or T2I-Adapter for each --control: a .safetensors file, a diffusers folder or a store name; tiny-shapes-scribble for the embedded model (one for all, or one each)",
      collect,
      [],
    )
    .option(
      "--control-type <module>",
      "how each control image becomes its map: scribble, canny, invert or none (the image is the map; default)",
      collect,
      [],
    )
    .option("--control-scale <f>", "each ControlNet's conditioning scale, 0 to 2 (default 1)", collect, [])
    .option(
      "--control-start <f>",
      "fraction of the steps after which each ControlNet starts acting (default 0)",
      collect,
      [],
    )
    .option(
      "--control-end <f>",
      "fraction of the steps after which each ControlNet stops acting (default 1)",
      collect,
      [],
    )
    .option(
      "--control-config <dir>",
      "a folder with the config.json of a single-file ControlNet of non-standard size (one for all, or one each)",
      collect,
      [],
    );
}

/**
 * The ControlNet units the flags describe: the n-th --control with the n-th of every other flag, or with its only
 * value when a flag is given once (one ControlNet model for several images, say). Any other count is an error naming
 * the flag; a flag without --control too.
 */
export function controlUnits(o: ControlOptions): ControlNetUnit[] | undefined {
  const n = o.control.length;
  const others: [string, string[]][] = [
    ["--control-model", o.controlModel],
    ["--control-type", o.controlType],
    ["--control-scale", o.controlScale],
    ["--control-start", o.controlStart],
    ["--control-end", o.controlEnd],
    ["--control-config", o.controlConfig],
  ];
  if (n === 0) {
    const stray = others.find(([, v]) => v.length > 0);
    if (stray) throw new InputError(`${stray[0]} needs --control: the control image it goes with`);
    return undefined;
  }
  if (o.controlModel.length === 0)
    throw new InputError(
      "--control needs --control-model: the ControlNet (a .safetensors file or a diffusers ControlNet folder) to guide with",
    );
  for (const [flag, values] of others) {
    if (values.length > 1 && values.length !== n) {
      throw new InputError(
        `${flag} is given ${values.length} times for ${n} --control images: give it once (for all) or once per --control`,
      );
    }
  }
  const pick = (values: string[], i: number) =>
    values.length === 0 ? undefined : values.length === 1 ? values[0] : values[i];
  const num = (flag: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const v = Number(value);
    if (value.trim() === "" || !Number.isFinite(v))
      throw new InputError(`${flag} ${JSON.stringify(value)} is not a number`);
    return v;
  };
  for (const image of o.control)
    if (!existsSync(image)) throw new InputError(`--control ${image}: file not found; check the path`);
  return o.control.map((image, i) => {
    const config = pick(o.controlConfig, i);
    const module = pick(o.controlType, i);
    const weight = num("--control-scale", pick(o.controlScale, i));
    const start = num("--control-start", pick(o.controlStart, i));
    const end = num("--control-end", pick(o.controlEnd, i));
    return {
      image,
      model: pick(o.controlModel, i)!,
      ...(config !== undefined ? { config } : {}),
      ...(module !== undefined ? { module } : {}),
      ...(weight !== undefined ? { weight } : {}),
      ...(start !== undefined ? { guidanceStart: start } : {}),
      ...(end !== undefined ? { guidanceEnd: end } : {}),
    };
  });
}
