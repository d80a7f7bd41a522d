import { InputError } from "../errors.js";
import type { ClipTokenizer } from "./clip-tokenizer.js";

/** A textual-inversion embedding as prompts name it: its trigger word and how many vectors it stands for. */
export interface EmbeddingWord {
  readonly name: string;
  readonly vectors: number;
}

/** An embedding found in a prompt's ids: how many ids its name took and the placeholder ids of its vectors. */
export interface EmbeddingMatch {
  readonly name: string;
  readonly length: number;
  readonly placeholders: readonly number[];
}

/**
 * Textual-inversion trigger words found the way AUTOMATIC1111 finds them: each name is tokenized as prompt text
 * is, and wherever a prompt's ids hold that sequence (the longest name first, where several start alike), it
 * stands for the embedding's vectors. Those take placeholder ids from `firstId` on, one per vector, embeddings in
 * the order given: the ids diffusers gives the same files loaded in that order (the text encoder reads them from
 * its extra rows, see CLIP_TEXT_IO.extraTokens).
 */
export class EmbeddingWords {
  private readonly byFirstId = new Map<number, { ids: readonly number[]; match: EmbeddingMatch }[]>();
  /** Placeholder ids in use: firstId up to this. */
  readonly endId: number;

  constructor(
    tokenizer: ClipTokenizer,
    words: readonly EmbeddingWord[],
    readonly firstId: number,
  ) {
    let next = firstId;
    for (const w of words) {
      const ids = tokenizer.encodeText(w.name);
      const placeholders = Array.from({ length: w.vectors }, (_, i) => next + i);
      next += w.vectors;
      if (ids.length === 0) continue; // a name of nothing but spaces and controls cannot be written in a prompt
      const list = this.byFirstId.get(ids[0]!) ?? [];
      list.push({ ids, match: { name: w.name, length: ids.length, placeholders } });
      list.sort((a, b) => b.ids.length - a.ids.length);
      this.byFirstId.set(ids[0]!, list);
    }
    this.endId = next;
  }

  /** The embedding whose name's ids start at `ids[at]`, if any. */
  match(ids: readonly number[], at: number): EmbeddingMatch | undefined {
    const candidates = this.byFirstId.get(ids[at]!);
    if (!candidates) return undefined;
    return candidates.find((c) => c.ids.every((id, i) => ids[at + i] === id))?.match;
  }
}

/** Checks that an embedding's vectors fit one chunk of `chunkLength` prompt positions. */
export function checkEmbeddingLength(name: string, vectors: number, chunkLength: number): void {
  if (vectors > chunkLength) {
    throw new InputError(
      `the embedding "${name}" has ${vectors} vectors, more than the ${chunkLength} positions of a prompt chunk; it cannot be used`,
    );
  }
}
