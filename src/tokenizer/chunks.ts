/**
 * Prompts longer than CLIP's 75 content positions, the AUTOMATIC1111 way: the weighted tokens are cut
 * into chunks of 75, each wrapped in start/end tokens and padded to 77, and the pipeline encodes every
 * chunk and concatenates the embeddings. BREAK ends a chunk early. When a chunk fills up within
 * `commaBacktrack` tokens of a comma, the words after that comma move to the next chunk, so that a
 * comma-separated phrase is not split between two encoder passes.
 */

import type { ClipTokenizer } from "./clip-tokenizer.js";
import { checkEmbeddingLength, type EmbeddingWords } from "./embedding-words.js";
import { parsePromptWeights } from "./prompt-weighting.js";

/** A1111's default for "Prompt word wrap length limit". */
export const DEFAULT_COMMA_BACKTRACK = 20;

export interface ChunkOptions {
  /** How far back (in tokens) a comma may be to move the chunk boundary to it; 0 turns this off. */
  readonly commaBacktrack?: number;
  /**
   * Textual-inversion embeddings: their trigger words become their vectors' placeholder ids, weighted like the
   * words around them, and an embedding is never split between two chunks (as in A1111).
   */
  readonly embeddings?: EmbeddingWords;
}

export interface EncodedPrompt {
  /** One array of 77 token ids per chunk; at least one chunk. */
  readonly ids: number[][];
  /** The weight of each of those tokens; 1 for start, end and padding. */
  readonly weights: number[][];
  /** Prompt tokens over all chunks, start/end/padding not counted. */
  readonly tokenCount: number;
  /** The embeddings the prompt uses, in order of first use. */
  readonly embeddings: readonly string[];
}

export function encodePrompt(tokenizer: ClipTokenizer, prompt: string, options: ChunkOptions = {}): EncodedPrompt {
  const backtrack = options.commaBacktrack ?? DEFAULT_COMMA_BACKTRACK;
  const size = tokenizer.maxLength - 2;
  const comma = tokenizer.tokenToId(",</w>");
  const ids: number[][] = [];
  const weights: number[][] = [];
  let tokenCount = 0;
  const used: string[] = [];

  let chunkIds: number[] = [];
  let chunkWeights: number[] = [];
  /** Index in the current chunk of its last comma, or -1. */
  let lastComma = -1;

  const closeChunk = (): void => {
    const pad = size - chunkIds.length;
    ids.push([tokenizer.bosId, ...chunkIds, tokenizer.eosId, ...new Array<number>(pad).fill(tokenizer.padId)]);
    weights.push([1, ...chunkWeights, 1, ...new Array<number>(pad).fill(1)]);
    chunkIds = [];
    chunkWeights = [];
    lastComma = -1;
  };

  for (const segment of parsePromptWeights(prompt)) {
    if (segment.kind === "break") {
      closeChunk();
      continue;
    }
    // Each segment is tokenized on its own, so a weight change also separates words, as in A1111.
    const segmentIds = tokenizer.encodeText(segment.text);
    for (let at = 0; at < segmentIds.length; ) {
      const embedding = options.embeddings?.match(segmentIds, at);
      if (embedding) {
        checkEmbeddingLength(embedding.name, embedding.placeholders.length, size);
        if (chunkIds.length + embedding.placeholders.length > size) closeChunk();
        for (const id of embedding.placeholders) {
          chunkIds.push(id);
          chunkWeights.push(segment.weight);
        }
        tokenCount += embedding.placeholders.length;
        if (!used.includes(embedding.name)) used.push(embedding.name);
        at += embedding.length;
        continue;
      }
      const id = segmentIds[at++]!;
      tokenCount++;
      if (id === comma) {
        lastComma = chunkIds.length;
      } else if (backtrack > 0 && chunkIds.length === size && lastComma !== -1 && size - lastComma <= backtrack) {
        const cut = lastComma + 1;
        const movedIds = chunkIds.slice(cut);
        const movedWeights = chunkWeights.slice(cut);
        chunkIds = chunkIds.slice(0, cut);
        chunkWeights = chunkWeights.slice(0, cut);
        closeChunk();
        chunkIds = movedIds;
        chunkWeights = movedWeights;
      }
      // A comma arriving at a full chunk opens the next one (and, as in A1111, is not remembered there).
      if (chunkIds.length === size) closeChunk();
      chunkIds.push(id);
      chunkWeights.push(segment.weight);
    }
  }
  if (chunkIds.length > 0 || ids.length === 0) closeChunk();
  return { ids, weights, tokenCount, embeddings: used };
}
