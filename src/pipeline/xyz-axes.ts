import { basename } from "node:path";
import { InputError } from "../errors.js";
import { parseSeed } from "../random/seed.js";
import type { GenerateParams } from "./params.js";
import { floatValues, integerValues, MAX_AXIS_VALUES, permutations } from "./xyz-values.js";

/**
 * The axes of an X/Y/Z plot, as AUTOMATIC1111's script names them ("CFG Scale", "Prompt S/R", ...), each with the
 * short forms people type (cfg, sampler, steps, ...), how its value text is read, how a value changes one cell's
 * request, and how the grid labels it.
 */

/** One cell's request: the generation parameters, and the checkpoint when an axis names one. */
export interface XyzCell {
  params: GenerateParams;
  /** A checkpoint name as the Checkpoint name axis gave it (the caller loads it); absent: the loaded model. */
  checkpoint?: string;
}

export type XyzValue = number | bigint | string | readonly string[];

export type XyzAxisId =
  | "nothing"
  | "seed"
  | "subseed"
  | "subseedStrength"
  | "steps"
  | "hiresSteps"
  | "cfgScale"
  | "promptSR"
  | "promptOrder"
  | "sampler"
  | "hiresSampler"
  | "checkpoint"
  | "sigmaChurn"
  | "sigmaMin"
  | "sigmaMax"
  | "sigmaNoise"
  | "schedule"
  | "eta"
  | "clipSkip"
  | "denoising"
  | "hiresUpscaler"
  | "vae"
  | "refinerSwitchAt"
  | "size"
  | "width"
  | "height"
  | "loraWeight";

export interface XyzAxis {
  readonly id: XyzAxisId;
  /** A1111's label, also the axis's name in the legend and the infotext's "X Type". */
  readonly label: string;
  /** Other names accepted (compared without case, dots, dashes or underscores). */
  readonly aliases: readonly string[];
  /** How expensive a change of value is: the costliest axis runs outermost (A1111: checkpoint 1, VAE 0.7). */
  readonly cost: number;
  /** Reads the axis's value texts (already split); an InputError names the axis and the value. */
  parse(values: readonly string[], where: string): XyzValue[];
  /** Checks the values against the base request before anything runs (what only the whole axis can know). */
  check?(values: readonly XyzValue[], base: GenerateParams, where: string): void;
  /** Sets the value in a cell's request (`values`: the whole axis, for Prompt S/R's search term). */
  apply(cell: XyzCell, value: XyzValue, values: readonly XyzValue[]): void;
  /** The value's label on the grid. */
  format(value: XyzValue): string;
}

const texts = (values: readonly string[]) => [...values];
const withLabel = (label: string) => (v: XyzValue) => `${label}: ${String(v)}`;
const plain = (v: XyzValue) => String(v);

function needsHires(label: string) {
  return (_values: readonly XyzValue[], base: GenerateParams, where: string) => {
    if (base.hires === undefined)
      throw new InputError(
        `${where}: the ${label} axis changes the hires fix, which this request does not use: turn it on (--hires SCALE, enable_hr) or pick another axis`,
      );
  };
}

function numberAxis(
  id: XyzAxisId,
  label: string,
  aliases: readonly string[],
  integer: boolean,
  apply: (cell: XyzCell, value: number) => void,
  check?: XyzAxis["check"],
): XyzAxis {
  return {
    id,
    label,
    aliases,
    cost: 0,
    parse: (values, where) => (integer ? integerValues(values, where) : floatValues(values, where)),
    apply: (cell, value) => apply(cell, value as number),
    format: withLabel(label),
    ...(check ? { check } : {}),
  };
}

/** Seeds are integers up to 2^64 - 1: a plain value is read exactly, a range (small numbers) as integers. */
function seedAxis(id: XyzAxisId, label: string, aliases: readonly string[], field: "seed" | "subseed"): XyzAxis {
  return {
    id,
    label,
    aliases,
    cost: 0,
    parse: (values, where) =>
      values.flatMap((v) =>
        /^\s*-?\d+\s*$/.test(v) ? [parseSeed(v.trim(), `${where}: seed`)] : integerValues([v], where).map(BigInt),
      ),
    apply: (cell, value) => {
      cell.params[field] = value as bigint;
    },
    format: withLabel(label),
  };
}

function textAxis(
  id: XyzAxisId,
  label: string,
  aliases: readonly string[],
  apply: (cell: XyzCell, value: string) => void,
  options: { cost?: number; format?: (v: XyzValue) => string; check?: XyzAxis["check"] } = {},
): XyzAxis {
  return {
    id,
    label,
    aliases,
    cost: options.cost ?? 0,
    parse: (values, where) => {
      const empty = values.indexOf("");
      if (empty >= 0) throw new InputError(`${where}: value ${empty + 1} is empty; remove the extra comma`);
      return texts(values);
    },
    apply: (cell, value) => apply(cell, value as string),
    format: options.format ?? withLabel(label),
    ...(options.check ? { check: options.check } : {}),
  };
}

/** A copy of the hires fix to change (the base request's is shared by every cell). */
function hiresOf(cell: XyzCell) {
  cell.params.hires = { ...cell.params.hires };
  return cell.params.hires;
}

/** A1111's Prompt S/R: the first value is searched for, and every value (the first too) replaces it. */
const promptSR: XyzAxis = {
  id: "promptSR",
  label: "Prompt S/R",
  aliases: ["prompt sr", "sr", "s/r", "search replace", "prompt search replace"],
  cost: 0,
  parse: (values) => texts(values),
  check: (values, base, where) => {
    const first = values[0] as string | undefined;
    if (first === undefined || first === "")
      throw new InputError(`${where}: the first value is what is searched for in the prompt; it cannot be empty`);
    if (!base.prompt.includes(first) && !(base.negativePrompt ?? "").includes(first))
      throw new InputError(
        `${where}: Prompt S/R searches the prompts for its first value, ${JSON.stringify(first)}, and it is in neither the prompt nor the negative prompt: put it in the prompt, or start the values with a word the prompt has`,
      );
  },
  apply: (cell, value, values) => {
    const search = values[0] as string;
    const p = cell.params;
    p.prompt = p.prompt.replaceAll(search, value as string);
    if (p.negativePrompt !== undefined) p.negativePrompt = p.negativePrompt.replaceAll(search, value as string);
  },
  format: plain,
};

/** The largest number of tokens Prompt order takes: 7 tokens already make 5,040 cells. */
const MAX_ORDER_TOKENS = 6;

/** A1111's Prompt order: every order of the given tokens, each put back where the tokens stood in the prompt. */
const promptOrder: XyzAxis = {
  id: "promptOrder",
  label: "Prompt order",
  aliases: ["order"],
  cost: 0,
  parse: (values, where) => {
    if (values.length > MAX_ORDER_TOKENS)
      throw new InputError(
        `${where}: ${values.length} tokens make ${permutations(values.slice(0, MAX_ORDER_TOKENS)).length}+ orders; give at most ${MAX_ORDER_TOKENS}`,
      );
    return permutations(values);
  },
  check: (values, base, where) => {
    for (const token of (values[0] as readonly string[]) ?? [])
      if (token === "" || !base.prompt.includes(token))
        throw new InputError(
          `${where}: Prompt order moves tokens of the prompt, and ${JSON.stringify(token)} is not in it: give words the prompt has`,
        );
  },
  apply: (cell, value) => {
    const tokens = value as readonly string[];
    // The tokens' places, in the order the prompt has them; each place takes the next token of this order.
    const places = [...tokens].sort((a, b) => cell.params.prompt.indexOf(a) - cell.params.prompt.indexOf(b));
    let rest = cell.params.prompt;
    let out = "";
    places.forEach((token, i) => {
      const at = rest.indexOf(token);
      out += rest.slice(0, at) + tokens[i];
      rest = rest.slice(at + token.length);
    });
    cell.params.prompt = out + rest;
  },
  format: (v) => (v as readonly string[]).join(", "),
};

/** "WxH" (A1111's Size axis, 1.10). */
const size: XyzAxis = {
  id: "size",
  label: "Size",
  aliases: ["wxh", "resolution"],
  cost: 0,
  parse: (values, where) =>
    values.map((v) => {
      if (!/^\s*\d+\s*[xX]\s*\d+\s*$/.test(v))
        throw new InputError(`${where}: ${JSON.stringify(v)} is not a size: write WIDTHxHEIGHT, e.g. 512x768`);
      return v.replace(/\s+/g, "").toLowerCase();
    }),
  apply: (cell, value) => {
    const [w, h] = (value as string).split("x").map(Number);
    cell.params.width = w;
    cell.params.height = h;
  },
  format: withLabel("Size"),
};

/** Every axis, in A1111's order (ours, Width, Height and LoRA weight, last). */
export const XYZ_AXES: readonly XyzAxis[] = [
  {
    id: "nothing",
    label: "Nothing",
    aliases: ["none"],
    cost: 0,
    parse: () => [""],
    apply: () => {},
    format: () => "",
  },
  seedAxis("seed", "Seed", ["seeds"], "seed"),
  seedAxis("subseed", "Var. seed", ["variation seed", "subseed"], "subseed"),
  numberAxis("subseedStrength", "Var. strength", ["variation strength", "subseed strength"], false, (c, v) => {
    c.params.subseedStrength = v;
  }),
  numberAxis("steps", "Steps", [], true, (c, v) => {
    c.params.steps = v;
  }),
  numberAxis(
    "hiresSteps",
    "Hires steps",
    ["hr steps", "hires second pass steps"],
    true,
    (c, v) => {
      hiresOf(c).steps = v;
    },
    needsHires("Hires steps"),
  ),
  numberAxis("cfgScale", "CFG Scale", ["cfg", "guidance", "guidance scale"], false, (c, v) => {
    c.params.cfgScale = v;
  }),
  promptSR,
  promptOrder,
  textAxis(
    "sampler",
    "Sampler",
    ["sampler name"],
    (c, v) => {
      c.params.sampler = v;
    },
    { format: plain },
  ),
  textAxis(
    "hiresSampler",
    "Hires sampler",
    ["hr sampler"],
    (c, v) => {
      hiresOf(c).sampler = v;
    },
    { check: needsHires("Hires sampler") },
  ),
  textAxis(
    "checkpoint",
    "Checkpoint name",
    ["checkpoint", "model", "ckpt"],
    (c, v) => {
      c.checkpoint = v;
    },
    { cost: 1, format: (v) => basename(String(v)) },
  ),
  // The sampler knobs (sampler-knobs.ts), as A1111 names them: s_churn, s_tmin, s_tmax, s_noise and eta.
  numberAxis("sigmaChurn", "Sigma Churn", ["s churn", "churn"], false, (c, v) => {
    c.params.sChurn = v;
  }),
  numberAxis("sigmaMin", "Sigma min", ["s tmin"], false, (c, v) => {
    c.params.sTmin = v;
  }),
  numberAxis("sigmaMax", "Sigma max", ["s tmax"], false, (c, v) => {
    c.params.sTmax = v;
  }),
  numberAxis("sigmaNoise", "Sigma noise", ["s noise"], false, (c, v) => {
    c.params.sNoise = v;
  }),
  textAxis("schedule", "Schedule type", ["schedule", "scheduler"], (c, v) => {
    c.params.schedule = v;
  }),
  numberAxis("eta", "Eta", [], false, (c, v) => {
    c.params.eta = v;
  }),
  numberAxis("clipSkip", "Clip skip", [], true, (c, v) => {
    c.params.clipSkip = v;
  }),
  numberAxis(
    "denoising",
    "Denoising",
    ["denoising strength", "denoise", "strength"],
    false,
    (c, v) => {
      // A1111's denoising_strength: the init image's repaint, or with the hires fix its second pass's.
      if (c.params.initImage === undefined && c.params.hires !== undefined) hiresOf(c).denoisingStrength = v;
      else c.params.denoisingStrength = v;
    },
    (_values, base, where) => {
      if (base.initImage === undefined && base.hires === undefined)
        throw new InputError(
          `${where}: the Denoising axis needs an init image (img2img, --init) or the hires fix (--hires): text-to-image alone has no denoising strength`,
        );
    },
  ),
  textAxis(
    "hiresUpscaler",
    "Hires upscaler",
    ["hr upscaler"],
    (c, v) => {
      hiresOf(c).upscaler = v;
    },
    { check: needsHires("Hires upscaler") },
  ),
  textAxis(
    "vae",
    "VAE",
    ["sd vae"],
    (c, v) => {
      // As A1111's find_vae: Automatic is the loaded one, None the checkpoint's own; else a VAE file or folder.
      const k = v.toLowerCase();
      if (k === "automatic" || k === "auto") delete c.params.vae;
      else c.params.vae = k === "none" ? null : v;
    },
    { cost: 0.7 },
  ),
  numberAxis("refinerSwitchAt", "Refiner switch at", ["refiner switch"], false, (c, v) => {
    c.params.refinerSwitchAt = v;
  }),
  size,
  numberAxis("width", "Width", ["w"], true, (c, v) => {
    c.params.width = v;
  }),
  numberAxis("height", "Height", ["h"], true, (c, v) => {
    c.params.height = v;
  }),
  numberAxis(
    "loraWeight",
    "LoRA weight",
    ["lora", "lora strength"],
    false,
    (c, v) => {
      c.params.loras = c.params.loras!.map((l) => ({ ...l, weight: v }));
    },
    (_values, base, where) => {
      if (base.loras?.length !== 1)
        throw new InputError(
          `${where}: the LoRA weight axis sets the weight of the one LoRA the request merges (--lora NAME), and it has ${base.loras?.length ?? 0}; ` +
            "for a LoRA named in the prompt, use Prompt S/R on its tag instead (e.g. <lora:NAME:0.5>,<lora:NAME:1>)",
        );
    },
  ),
];

const normal = (name: string) => name.toLowerCase().replace(/[._-]/g, " ").replace(/\s+/g, " ").trim();

/** The axis a name means (A1111's label or a short form, any case), or an InputError listing the names. */
export function findXyzAxis(name: string, where: string): XyzAxis {
  const n = normal(name);
  const axis = XYZ_AXES.find(
    (a) => normal(a.label) === n || normal(a.id) === n || a.aliases.some((x) => normal(x) === n),
  );
  if (axis) return axis;
  throw new InputError(
    `${where}: no axis is called ${JSON.stringify(name)}; use one of ${XYZ_AXES.filter((a) => a.id !== "nothing")
      .map((a) => a.label)
      .join(", ")} (or cfg, sampler, steps, seed, schedule, checkpoint, size, denoising, prompt s/r)`,
  );
}

export function xyzAxis(id: XyzAxisId): XyzAxis {
  return XYZ_AXES.find((a) => a.id === id)!;
}

export { MAX_AXIS_VALUES };
