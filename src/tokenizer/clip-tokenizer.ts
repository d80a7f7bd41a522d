/**
 * The CLIP text tokenizer: prompt clean-up, CLIP's pre-tokenizer split, byte-level BPE, then ids with
 * start/end tokens, truncated and padded to the 77 positions the text encoders take.
 */

import { InputError } from "../errors.js";
import { BytePairEncoder, END_OF_WORD } from "./bpe.js";
import { bytesToSymbols, symbolsToText } from "./bytes-to-unicode.js";
import { END_OF_TEXT, START_OF_TEXT, readClipVocabulary, type ClipVocabulary } from "./clip-vocabulary.js";
import { PYTHON_WHITESPACE, cleanPromptText } from "./text-cleanup.js";

/** Positions the CLIP text encoders take, start and end tokens included. */
export const CLIP_MAX_LENGTH = 77;

/**
 * CLIP's pre-tokenizer: the special tokens, English contractions, letter runs, single digits, and runs
 * of anything else that is not whitespace. Digits one by one is CLIP's choice ("1024" is four tokens).
 * Each piece is byte-pair encoded on its own, so these are the words the text encoder can tell apart
 * (the prompt policy matches them). Global: use it with matchAll or match, which leave it as they found it.
 */
export const PRE_TOKEN = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${PYTHON_WHITESPACE}\\p{L}\\p{N}]+`,
  "giu",
);

export interface ClipTokenizerOptions {
  /** Overrides the pad token named by the tokenizer files. */
  readonly padToken?: string;
  /**
   * The pad token when the files name none (OpenAI's .gz): "!" for an OpenCLIP encoder (SD2's, SDXL's bigG),
   * which pads with id 0 as open_clip does; <|endoftext|> (OpenAI CLIP's) when absent.
   */
  readonly defaultPadToken?: string;
}

export interface EncodeOptions {
  /** Pad with the pad token up to 77 (default true). */
  readonly padding?: boolean;
  /** Cut to 77, keeping the end token last (default true). */
  readonly truncation?: boolean;
}

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly maxLength = CLIP_MAX_LENGTH;
  private readonly unkId: number;
  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder: ReadonlyMap<number, string>;
  private readonly bpe: BytePairEncoder;
  /** Special and added tokens, cut out of the raw prompt before clean-up (longest first). */
  private readonly addedTokenPattern: RegExp;

  /**
   * Loads from a Hugging Face tokenizer folder (vocab.json + merges.txt), a folder holding OpenAI's
   * bpe_simple_vocab_16e6.txt.gz, or that .gz file.
   */
  static async load(path: string, options: ClipTokenizerOptions = {}): Promise<ClipTokenizer> {
    return new ClipTokenizer(await readClipVocabulary(path), options);
  }

  constructor(vocabulary: ClipVocabulary, options: ClipTokenizerOptions = {}) {
    this.encoder = vocabulary.encoder;
    this.decoder = new Map([...vocabulary.encoder].map(([token, id]) => [id, token]));
    this.bpe = new BytePairEncoder(vocabulary.merges);
    const idOf = (token: string, role: string): number => {
      const id = vocabulary.encoder.get(token);
      if (id === undefined) {
        throw new InputError(
          `the ${role} token ${JSON.stringify(token)} is not in the vocabulary of ${vocabulary.source}: ` +
            `the tokenizer files do not belong together; re-download them or point --tokenizer at the model's own tokenizer folder`,
        );
      }
      return id;
    };
    this.bosId = idOf(vocabulary.special.bos, "start");
    this.eosId = idOf(vocabulary.special.eos, "end");
    const named = options.padToken ?? vocabulary.special.pad;
    this.padId = idOf(named ?? options.defaultPadToken ?? END_OF_TEXT, "pad");
    this.unkId = idOf(vocabulary.special.unk, "unknown");
    const { bos, eos, unk } = vocabulary.special;
    // A pad token the files (or the caller) name is a special token that prompts cannot split, as in transformers;
    // open_clip's tokenizer, whose padding the default stands for, has no such token.
    const added = new Set([bos, eos, unk, ...(named === undefined ? [] : [named]), ...vocabulary.addedTokens]);
    this.addedTokenPattern = new RegExp(
      [...added]
        .sort((a, b) => b.length - a.length)
        .map(escapeRegExp)
        .join("|"),
      "g",
    );
  }

  /**
   * The prompt's BPE tokens as vocabulary strings, without start/end tokens. Special and added tokens
   * written in the prompt are kept whole, as transformers does: with SD2's tokenizer, whose pad token
   * "!" is such a token, "wow!!" gives "wow</w>", "!", "!".
   */
  tokenize(text: string): string[] {
    const tokens: string[] = [];
    let start = 0;
    for (const match of text.matchAll(this.addedTokenPattern)) {
      this.tokenizePlain(text.slice(start, match.index), tokens);
      tokens.push(match[0]);
      start = match.index + match[0].length;
    }
    this.tokenizePlain(text.slice(start), tokens);
    return tokens;
  }

  private tokenizePlain(text: string, out: string[]): void {
    for (const [piece] of cleanPromptText(text).matchAll(PRE_TOKEN)) {
      // Special tokens that only appear after clean-up (written in upper case, or as HTML entities)
      // also stand for themselves, as in both references.
      if (piece === START_OF_TEXT || piece === END_OF_TEXT) out.push(piece);
      else out.push(...this.bpe.encode(bytesToSymbols(piece)));
    }
  }

  /** The prompt's token ids without start/end tokens, untruncated. */
  encodeText(text: string): number[] {
    return this.tokenize(text).map((t) => this.encoder.get(t) ?? this.unkId);
  }

  /** Start token, the prompt's ids, end token; by default cut and padded to 77. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { padding = true, truncation = true } = options;
    let body = this.encodeText(text);
    if (truncation) body = body.slice(0, this.maxLength - 2);
    const ids = [this.bosId, ...body, this.eosId];
    while (padding && ids.length < this.maxLength) ids.push(this.padId);
    return ids;
  }

  tokenToId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.decoder.get(id);
  }

  /** Text for ids up to the first end token (what follows is padding); start tokens are dropped. */
  decode(ids: readonly number[]): string {
    const end = ids.indexOf(this.eosId);
    const symbols = (end < 0 ? ids : ids.slice(0, end))
      .filter((id) => id !== this.bosId)
      .map((id) => this.decoder.get(id) ?? "")
      .join("");
    return symbolsToText(symbols.split(END_OF_WORD).join(" ")).trim();
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
