import { InputError } from "../errors.js";

/**
 * The generation parameters AUTOMATIC1111 stores in a PNG's "parameters" text ("infotext"), typed.
 * Keys this type does not name are kept verbatim in `extra`, so a parse/build round trip loses nothing.
 */
export interface Infotext {
  readonly prompt: string;
  /** Empty when there was none (the "Negative prompt:" line is then omitted). */
  readonly negativePrompt: string;
  readonly steps: number;
  /** A1111's sampler name, e.g. "Euler a", "DPM++ 2M". */
  readonly sampler: string;
  /** A1111 1.9+'s "Schedule type" ("Karras", "Exponential", ...), written when not the sampler's own ("Automatic"). */
  readonly scheduleType?: string;
  readonly cfgScale: number;
  /** Exact, as given: seeds run to 2^64 - 1, past what a number holds (A1111 writes negative ones as given, too). */
  readonly seed: bigint;
  readonly width: number;
  readonly height: number;
  /** A1111's short hash: the first 10 hex digits of the checkpoint file's sha256. */
  readonly modelHash?: string;
  readonly model?: string;
  /** img2img / inpainting only. */
  readonly denoisingStrength?: number;
  /** A1111 writes it only when above 1: leave it undefined for the default. */
  readonly clipSkip?: number;
  /** Where the initial noise came from; "CPU" for PyTorch's CPU generator, which random/ reproduces. */
  readonly rng?: string;
  readonly extra: Readonly<Record<string, string>>;
}

/** Prompt, negative prompt and the raw key/value pairs of the last line, before any typing. */
export interface InfotextParts {
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * The order A1111's create_infotext lists its keys in. Keys found here are written at their A1111 position
 * whether typed or in `extra`; unknown extras go after them but before "Version" and "User", which A1111
 * always writes last.
 */
const KEY_ORDER = [
  "Steps",
  "Sampler",
  "Schedule type",
  "CFG scale",
  "Image CFG scale",
  "Seed",
  "Face restoration",
  "Size",
  "Model hash",
  "Model",
  "FP8 weight",
  "Cache FP16 weight for LoRA",
  "VAE hash",
  "VAE",
  "Variation seed",
  "Variation seed strength",
  "Seed resize from",
  "Denoising strength",
  "Conditional mask weight",
  "Clip skip",
  "ENSD",
  "Token merging ratio",
  "Token merging ratio hr",
  "Init image hash",
  "RNG",
  "NGMS",
  "Tiling",
];
const TRAILING_KEYS = ["Version", "User"];

/** Keys that map to typed fields: an `extra` entry with one of these names would be written twice. */
const TYPED_KEYS = new Set([
  "Steps",
  "Sampler",
  "Schedule type",
  "CFG scale",
  "Seed",
  "Size",
  "Model hash",
  "Model",
  "Denoising strength",
  "Clip skip",
  "RNG",
]);

const NEGATIVE_PREFIX = "Negative prompt:";

/**
 * One `key: value` item of the parameter line, as A1111's parser reads it: a key of word characters,
 * spaces, dashes and slashes, then either a JSON-quoted string or everything up to the next comma.
 */
const PARAM = /\s*([\p{L}\p{N}_][\p{L}\p{N}_ \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/gu;
const WHOLE_KEY = /^[\p{L}\p{N}_][\p{L}\p{N}_ \-/]+$/u;
const SIZE = /^(\d+)x(\d+)$/;

/**
 * Writes infotext the way A1111 does: prompt, "Negative prompt: ..." when there is one, and one line of
 * `Key: value` pairs joined by ", ".
 */
export function buildInfotext(info: Infotext): string {
  const params = new Map<string, string>();
  params.set("Steps", String(info.steps));
  params.set("Sampler", info.sampler);
  if (info.scheduleType !== undefined) params.set("Schedule type", info.scheduleType);
  params.set("CFG scale", String(info.cfgScale));
  params.set("Seed", String(info.seed));
  params.set("Size", `${info.width}x${info.height}`);
  if (info.modelHash !== undefined) params.set("Model hash", info.modelHash);
  if (info.model !== undefined) params.set("Model", info.model);
  if (info.denoisingStrength !== undefined) params.set("Denoising strength", String(info.denoisingStrength));
  if (info.clipSkip !== undefined) params.set("Clip skip", String(info.clipSkip));
  if (info.rng !== undefined) params.set("RNG", info.rng);
  for (const [key, value] of Object.entries(info.extra)) {
    if (TYPED_KEYS.has(key)) {
      throw new InputError(
        `infotext extra key "${key}" duplicates a typed field; set the field instead of extra["${key}"]`,
      );
    }
    if (!WHOLE_KEY.test(key)) {
      throw new InputError(
        `infotext key ${JSON.stringify(key)} cannot be read back: keys are letters, digits, spaces, "_", "-" and "/" (at least 2 characters, not starting with a space or sign)`,
      );
    }
    params.set(key, value);
  }
  const line = orderKeys([...params.keys()])
    .map((key) => `${key}: ${quoteInfotextValue(params.get(key)!)}`)
    .join(", ");
  const negative = info.negativePrompt ? `\n${NEGATIVE_PREFIX} ${info.negativePrompt}` : "";
  return `${info.prompt}${negative}\n${line}`.trim();
}

function orderKeys(keys: string[]): string[] {
  const rank = (k: string): number => {
    const known = KEY_ORDER.indexOf(k);
    if (known >= 0) return known;
    const trailing = TRAILING_KEYS.indexOf(k);
    return trailing >= 0 ? KEY_ORDER.length + 1 + trailing : KEY_ORDER.length;
  };
  // Array.prototype.sort is stable, so unknown extras keep the caller's order among themselves.
  return [...keys].sort((a, b) => rank(a) - rank(b));
}

/**
 * A1111 quotes a value (as a JSON string) when it holds a comma, colon or newline, since those would cut it
 * short on parsing. We also quote values with a double quote or carriage return: A1111 would write `"x"`
 * bare and read it back as `x`; quoted, both A1111 and we read back exactly what was written.
 */
export function quoteInfotextValue(value: string): string {
  return /[,:\n\r"]/.test(value) ? JSON.stringify(value) : value;
}

function unquote(value: string): string {
  if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"')) return value;
  try {
    return JSON.parse(value) as string;
  } catch {
    return value; // not valid JSON after all: keep it as written, as A1111 does
  }
}

/**
 * Splits infotext into prompt, negative prompt and the raw parameters, following A1111's reading rules:
 * the last line holds the parameters only if at least 3 `key: value` items are found on it (otherwise it is
 * part of the prompt), lines from "Negative prompt:" on form the negative prompt, and every prompt line is
 * trimmed. Later duplicates of a key win.
 */
export function splitInfotext(text: string): InfotextParts {
  const lines = text.trim().split("\n");
  let last = lines.pop() ?? "";
  const items = [...last.matchAll(PARAM)];
  if (items.length < 3) {
    lines.push(last);
    last = "";
  }
  const prompt: string[] = [];
  const negative: string[] = [];
  let inNegative = false;
  for (const raw of lines) {
    let line = raw.trim();
    if (line.startsWith(NEGATIVE_PREFIX)) {
      inNegative = true;
      line = line.slice(NEGATIVE_PREFIX.length).trim();
    }
    (inNegative ? negative : prompt).push(line);
  }
  const params: Record<string, string> = {};
  if (last) {
    for (const m of items) {
      const value = m[2]!.trim();
      params[m[1]!] = value.startsWith('"') ? unquote(value) : value;
    }
  }
  return { prompt: prompt.join("\n"), negativePrompt: negative.join("\n"), params };
}

/**
 * Parses A1111 infotext into typed parameters. Throws InputError when the text lacks the parameters every
 * A1111 image carries (Steps, Sampler, CFG scale, Seed, Size) or one of the typed values is malformed.
 */
export function parseInfotext(text: string): Infotext {
  const { prompt, negativePrompt, params } = splitInfotext(text);
  const required = ["Steps", "Sampler", "CFG scale", "Seed", "Size"];
  const missing = required.filter((k) => params[k] === undefined);
  if (missing.length > 0) {
    throw new InputError(
      `the generation parameters lack ${missing.join(", ")}: this does not look like AUTOMATIC1111 infotext, whose last line reads like "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512"`,
    );
  }
  const size = SIZE.exec(params["Size"]!);
  if (!size) throw new InputError(`infotext Size "${params["Size"]}" is not WIDTHxHEIGHT (e.g. 512x768)`);
  const extra: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) if (!TYPED_KEYS.has(key)) extra[key] = value;
  const optional = <T>(key: string, read: (key: string) => T): T | undefined =>
    params[key] === undefined ? undefined : read(key);
  const integer = (key: string): number => number(params, key, true);
  const real = (key: string): number => number(params, key, false);
  const str = (key: string): string => params[key]!;
  return {
    prompt,
    negativePrompt,
    steps: integer("Steps"),
    sampler: str("Sampler"),
    ...defined("scheduleType", optional("Schedule type", str)),
    cfgScale: real("CFG scale"),
    seed: wholeNumber(params, "Seed"),
    width: Number(size[1]),
    height: Number(size[2]),
    ...defined("modelHash", optional("Model hash", str)),
    ...defined("model", optional("Model", str)),
    ...defined("denoisingStrength", optional("Denoising strength", real)),
    ...defined("clipSkip", optional("Clip skip", integer)),
    ...defined("rng", optional("RNG", str)),
    extra,
  };
}

/** Leaves absent optional fields out of the object instead of present-but-undefined (exactOptionalPropertyTypes-safe). */
function defined<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function number(params: Readonly<Record<string, string>>, key: string, integer: boolean): number {
  const raw = params[key]!;
  const n = raw === "" ? NaN : Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new InputError(
      `infotext ${key} "${raw}" is not ${integer ? "a whole number" : "a number"}; fix or remove it`,
    );
  }
  return n;
}

/** An integer of any size, exactly (a seed beyond 2^53 would lose digits as a number). */
function wholeNumber(params: Readonly<Record<string, string>>, key: string): bigint {
  const raw = params[key]!;
  if (!/^-?\d+$/.test(raw)) throw new InputError(`infotext ${key} "${raw}" is not a whole number; fix or remove it`);
  return BigInt(raw);
}
