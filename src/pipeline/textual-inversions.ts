import type { ModelFamily } from "../configs/pipeline.js";
import { encodePrompt } from "../tokenizer/chunks.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import { EmbeddingWords } from "../tokenizer/embedding-words.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import {
  readEmbedding,
  type EmbeddingFile,
  type EmbeddingPart,
  type EmbeddingSource,
} from "../weights/embedding-file.js";
import type { AdapterFolder } from "./adapter-folder.js";
import type { EncoderEmbeddings } from "./conditioning.js";

/** An embedding a library caller loads with the model: a .safetensors path or bytes, and its trigger word. */
export interface EmbeddingRequest {
  source: EmbeddingSource;
  /** The word that stands for it in prompts (default: the file name without .safetensors, as in A1111). */
  token?: string;
}

/** The text encoders of a model, as embeddings see them: the part of a file each reads, its width and vocabulary size. */
export interface EmbeddingEncoder {
  readonly part: EmbeddingPart;
  readonly width: number;
  readonly vocabSize: number;
}

/** The text encoders of a checkpoint as textual inversion sees them: the part of a file each reads, widths, vocabularies. */
export function embeddingEncoders(ckpt: Checkpoint): EmbeddingEncoder[] {
  const parts = embeddingParts(ckpt.config.family);
  const configs = [ckpt.config.textEncoder, ckpt.config.textEncoder2].slice(0, ckpt.textEncoderFolders.length);
  return configs.map((c, i) => ({ part: parts[i]!, width: c!.hiddenSize, vocabSize: c!.vocabSize }));
}

/** Which part of an embedding file each text encoder of a family reads (SDXL's refiner has only bigG). */
function embeddingParts(family: ModelFamily): EmbeddingPart[] {
  switch (family) {
    case "sd1":
    case "sd2":
      return ["single"];
    case "sdxl":
      return ["clip_l", "clip_g"];
    case "sdxl-refiner":
      return ["clip_g"];
  }
}

interface Loaded {
  /** Usable with this model, in placeholder-id order. */
  readonly loaded: readonly EmbeddingFile[];
  /** Readable, but made for other encoders (A1111's "skipped"). */
  readonly skipped: readonly EmbeddingFile[];
  /** Files of the folder that cannot be used (pickles, damaged files): naming one in a prompt is an error. */
  readonly failed: ReadonlyMap<string, Error>;
  readonly perEncoder: Map<number, EncoderEmbeddings>;
}

/**
 * The textual-inversion embeddings of a model, from the embeddings a library caller gave (in their order, first)
 * and the embeddings folder (by name), rescanned when the folder changes, as A1111 does. An embedding whose vectors
 * do not fit the model's encoders is skipped (listed as such), not an error.
 */
export class TextualInversions {
  private state: Loaded | undefined;

  constructor(
    private readonly encoders: readonly EmbeddingEncoder[],
    private readonly given: readonly EmbeddingRequest[] = [],
    private readonly folder?: AdapterFolder,
  ) {}

  /** Loaded and skipped embeddings (GET /sdapi/v1/embeddings), after a rescan of a changed folder. */
  current(): Pick<Loaded, "loaded" | "skipped" | "failed"> {
    this.folder?.refreshIfChanged();
    return (this.state ??= this.load());
  }

  /** Forgets what was read: the next use reads the folder again. */
  refresh(): void {
    this.folder?.refresh();
    this.state = undefined;
  }

  /** The trigger words and vectors text encoder `index` reads; undefined when no embedding is loaded. */
  forEncoder(index: number, tokenizer: ClipTokenizer): EncoderEmbeddings | undefined {
    const state = this.current() as Loaded;
    if (state.loaded.length === 0) return undefined;
    let e = state.perEncoder.get(index);
    if (!e) {
      const encoder = this.encoders[index]!;
      const words = new EmbeddingWords(
        tokenizer,
        state.loaded.map((f) => ({ name: f.name, vectors: f.vectors })),
        encoder.vocabSize,
      );
      const rows = new Float32Array(state.loaded.reduce((n, f) => n + f.vectors, 0) * encoder.width);
      let at = 0;
      for (const f of state.loaded) {
        const v = f.parts.get(encoder.part)!;
        rows.set(v.data, at);
        at += v.data.length;
      }
      e = { words, rows };
      state.perEncoder.set(index, e);
    }
    return e;
  }

  /**
   * The embeddings `texts` use (for the infotext's TI hashes), read with the first encoder's tokenizer. A word that
   * names an embedding file that could not be read throws that file's error: the user meant it.
   */
  used(texts: readonly string[], tokenizer: ClipTokenizer): EmbeddingFile[] {
    const state = this.current();
    if (state.failed.size > 0) {
      const failed = new EmbeddingWords(
        tokenizer,
        [...state.failed.keys()].map((name) => ({ name, vectors: 1 })),
        this.encoders[0]!.vocabSize,
      );
      for (const text of texts) {
        const [name] = encodePrompt(tokenizer, text, { embeddings: failed }).embeddings;
        if (name !== undefined) throw state.failed.get(name)!;
      }
    }
    const words = this.forEncoder(0, tokenizer)?.words;
    if (!words) return [];
    const names = new Set(texts.flatMap((t) => encodePrompt(tokenizer, t, { embeddings: words }).embeddings));
    return state.loaded.filter((f) => names.has(f.name));
  }

  private load(): Loaded {
    const loaded: EmbeddingFile[] = [];
    const skipped: EmbeddingFile[] = [];
    const failed = new Map<string, Error>();
    const taken = new Set<string>();
    const add = (f: EmbeddingFile) => {
      if (taken.has(f.name)) return;
      taken.add(f.name);
      (this.fits(f) ? loaded : skipped).push(f);
    };
    // Given ones are the caller's: a bad one is an error now. The folder's are checked when a prompt names them.
    for (const g of this.given) add(readEmbedding(g.source, g.token));
    for (const entry of this.folder?.list() ?? []) {
      if (taken.has(entry.name)) continue;
      try {
        add(readEmbedding(entry.path));
      } catch (e) {
        failed.set(entry.name, e as Error);
      }
    }
    return { loaded, skipped, failed, perEncoder: new Map() };
  }

  private fits(f: EmbeddingFile): boolean {
    return this.encoders.every((e) => f.parts.get(e.part)?.width === e.width);
  }
}
