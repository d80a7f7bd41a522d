/**
 * Reading a CLIP BPE vocabulary from disk, in either of the two forms models ship it in:
 * a Hugging Face tokenizer folder (`vocab.json` + `merges.txt`, optionally `special_tokens_map.json` /
 * `tokenizer_config.json` naming the special tokens), or OpenAI's `bpe_simple_vocab_16e6.txt.gz`, from
 * which the vocabulary is rebuilt in OpenAI's order so that ids agree with the folders'.
 */

import { stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { InputError } from "../errors.js";
import { MAX_SIDE_FILE_BYTES, readJsonFile, readRegularFile, type ReadOptions } from "../regular-file.js";
import { BYTE_SYMBOLS } from "./bytes-to-unicode.js";
import { END_OF_WORD } from "./bpe.js";

export const START_OF_TEXT = "<|startoftext|>";
export const END_OF_TEXT = "<|endoftext|>";

export const HUGGING_FACE_FILES = ["vocab.json", "merges.txt"] as const;
export const OPENAI_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz";

/**
 * CLIP's vocabulary has 49152 entries before the two special tokens: 512 byte symbols and 48894 merges.
 * Both references read only that many merges from longer files, so we do too.
 */
const MAX_MERGES = 49152 - 256 - 2;

export interface SpecialTokens {
  readonly bos: string;
  readonly eos: string;
  /**
   * Absent when the files cannot name one: OpenAI's .gz carries the merges alone (the tokenizer then takes the
   * pad token of the encoder it serves: <|endoftext|> for OpenAI's CLIP, "!" (id 0) for OpenCLIP's).
   */
  readonly pad?: string;
  readonly unk: string;
}

export interface ClipVocabulary {
  /** Token string to id. */
  readonly encoder: ReadonlyMap<string, number>;
  /** Merge pairs in priority order. */
  readonly merges: readonly (readonly [string, string])[];
  readonly special: SpecialTokens;
  /**
   * Tokens registered on top of the BPE vocabulary (tokenizer_config.json's added_tokens_decoder,
   * added_tokens.json). Like the special tokens, they are cut out of the raw prompt before clean-up.
   */
  readonly addedTokens: readonly string[];
  /** The folder or file it was read from, for messages. */
  readonly source: string;
}

/** transformers' CLIPTokenizer defaults, for folders whose config files name no special tokens. */
const DEFAULT_SPECIAL: Required<SpecialTokens> = {
  bos: START_OF_TEXT,
  eos: END_OF_TEXT,
  pad: END_OF_TEXT,
  unk: END_OF_TEXT,
};

const gunzipAsync = promisify(gunzip);

/** Tokenizer files are read with the checks of regular-file.ts: a FIFO, a device or a 2 GB "vocab.json" is refused. */
const READ: ReadOptions = { hint: "re-download the tokenizer folder", maxBytes: MAX_SIDE_FILE_BYTES };

/** Reads a tokenizer from a Hugging Face tokenizer folder, a folder holding OpenAI's file, or that file itself. */
export async function readClipVocabulary(path: string): Promise<ClipVocabulary> {
  const kind = await pathKind(path);
  if (kind === "missing") {
    throw new InputError(`tokenizer path ${path} does not exist: ${whatToPass()}`);
  }
  if (kind === "file") {
    if (path.endsWith(".gz")) return readOpenAiBpe(path);
    throw new InputError(`${path} is not a CLIP tokenizer: ${whatToPass()}`);
  }
  const present = await Promise.all(HUGGING_FACE_FILES.map((f) => pathKind(join(path, f))));
  if (present.every((k) => k === "file")) return readHuggingFaceFolder(path);
  const openai = join(path, OPENAI_BPE_FILE);
  if ((await pathKind(openai)) === "file") return readOpenAiBpe(openai);
  const missing = HUGGING_FACE_FILES.filter((_, i) => present[i] !== "file");
  throw new InputError(`no CLIP tokenizer in ${path}: ${missing.join(" and ")} not found there. ${whatToPass()}`);
}

function whatToPass(): string {
  return (
    `expected a folder holding ${HUGGING_FACE_FILES.join(" + ")} (a Hugging Face tokenizer folder, ` +
    `with optional special_tokens_map.json / tokenizer_config.json) or OpenAI's ${OPENAI_BPE_FILE}; ` +
    `point --tokenizer PATH at such a folder or at the .gz file`
  );
}

async function readHuggingFaceFolder(dir: string): Promise<ClipVocabulary> {
  const vocabPath = join(dir, "vocab.json");
  const raw = readJsonFile(vocabPath, InputError, READ);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new InputError(`${vocabPath} is not a JSON object of token -> id: re-download the tokenizer folder`);
  }
  const encoder = new Map<string, number>();
  for (const [token, id] of Object.entries(raw)) {
    if (!Number.isInteger(id)) {
      throw new InputError(
        `${vocabPath}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected an integer`,
      );
    }
    encoder.set(token, id as number);
  }
  const mergesPath = join(dir, "merges.txt");
  const merges = parseMerges(readRegularFile(mergesPath, InputError, READ).toString("utf8"), mergesPath);
  const { special, added } = await readTokenizerConfig(dir);
  for (const [token, id] of added) if (!encoder.has(token)) encoder.set(token, id);
  return { encoder, merges, special, addedTokens: [...added.keys()], source: dir };
}

async function readOpenAiBpe(file: string): Promise<ClipVocabulary> {
  const gz = readRegularFile(file, InputError, READ);
  let text: string;
  try {
    text = (await gunzipAsync(gz, { maxOutputLength: MAX_SIDE_FILE_BYTES })).toString("utf8");
  } catch (e) {
    throw new InputError(`${file} could not be decompressed (${(e as Error).message}): re-download ${OPENAI_BPE_FILE}`);
  }
  const merges = parseMerges(text, file);
  // OpenAI's order: byte symbols, the same with the word-end mark, one token per merge, then the specials.
  const tokens = [
    ...BYTE_SYMBOLS,
    ...BYTE_SYMBOLS.map((s) => s + END_OF_WORD),
    ...merges.map(([a, b]) => a + b),
    START_OF_TEXT,
    END_OF_TEXT,
  ];
  const encoder = new Map<string, number>();
  tokens.forEach((t, id) => encoder.set(t, id));
  return {
    encoder,
    merges,
    special: { bos: DEFAULT_SPECIAL.bos, eos: DEFAULT_SPECIAL.eos, unk: DEFAULT_SPECIAL.unk },
    addedTokens: [],
    source: file,
  };
}

/** Line 0 is a version header in both formats; each other line is "left right". */
function parseMerges(text: string, source: string): [string, string][] {
  const lines = text
    .trimEnd()
    .split("\n")
    .slice(1, MAX_MERGES + 1);
  return lines.map((line, i) => {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2 || parts[0] === "") {
      throw new InputError(
        `${source} line ${i + 2} is ${JSON.stringify(line)}, expected two symbols separated by a space: re-download the tokenizer files`,
      );
    }
    return [parts[0]!, parts[1]!];
  });
}

/**
 * The special tokens, with special_tokens_map.json taking precedence over tokenizer_config.json as when
 * transformers loads the folder (only the pad token differs in practice: SD1 pads with <|endoftext|>,
 * SD2 with "!"), and the added tokens with their ids.
 */
async function readTokenizerConfig(dir: string): Promise<{ special: SpecialTokens; added: Map<string, number> }> {
  const [specialMap, tokenizerConfig, addedTokens] = await Promise.all(
    ["special_tokens_map.json", "tokenizer_config.json", "added_tokens.json"].map((f) => readJsonObject(join(dir, f))),
  );
  const configs = [specialMap, tokenizerConfig].filter((c) => c !== undefined);
  const pick = (key: string, fallback: string): string => {
    for (const config of configs) {
      const value = tokenContent(config[`${key}_token`]);
      if (value !== undefined) return value;
    }
    return fallback;
  };
  const special: SpecialTokens = {
    bos: pick("bos", DEFAULT_SPECIAL.bos),
    eos: pick("eos", DEFAULT_SPECIAL.eos),
    pad: pick("pad", DEFAULT_SPECIAL.pad),
    unk: pick("unk", DEFAULT_SPECIAL.unk),
  };
  const added = new Map<string, number>();
  for (const [token, id] of Object.entries(addedTokens ?? {})) {
    if (Number.isInteger(id)) added.set(token, id as number);
  }
  const decoder = tokenizerConfig?.["added_tokens_decoder"];
  if (decoder !== null && typeof decoder === "object") {
    for (const [id, entry] of Object.entries(decoder as Record<string, unknown>)) {
      const token = tokenContent(entry);
      if (token !== undefined && /^\d+$/.test(id)) added.set(token, Number(id));
    }
  }
  return { special, added };
}

async function readJsonObject(file: string): Promise<Record<string, unknown> | undefined> {
  if ((await pathKind(file)) !== "file") return undefined;
  const parsed = readJsonFile(file, InputError, READ);
  return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : undefined;
}

/** A special token is written either as its string or as an object with `content`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

async function pathKind(path: string): Promise<"file" | "dir" | "missing"> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? "dir" : "file";
  } catch {
    return "missing";
  }
}
