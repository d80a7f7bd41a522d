import { InputError } from "../errors.js";
import { CLIP_TEXT_IO } from "../models/clip-text.js";
import type { TextEncoderConfig } from "../configs/text-encoder.js";
import type { Session } from "../runtime/session.js";
import { encodePrompt, type EncodedPrompt } from "../tokenizer/chunks.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { EmbeddingWords } from "../tokenizer/embedding-words.js";
import type { WeightSource } from "../weights/weight-source.js";
import type { NetworkName, Networks } from "./networks.js";

/** The final layer norm of the text encoder, applied to an earlier layer's output for "clip skip". */
export interface FinalLayerNorm {
  weight: Float32Array;
  bias: Float32Array;
  eps: number;
}

export interface TextEncoderHandle {
  session: Session;
  tokenizer: ClipTokenizer;
  hiddenSize: number;
  layers: number;
  finalLayerNorm: FinalLayerNorm;
  /** Textual-inversion embeddings this encoder reads (absent: none). */
  embeddings?: EncoderEmbeddings;
}

/** Textual-inversion embeddings for one text encoder: their trigger words and their vectors, in placeholder-id order. */
export interface EncoderEmbeddings {
  words: EmbeddingWords;
  /** [vectors, hidden]: the row of placeholder id words.firstId + i is row i. */
  rows: Float32Array;
}

/** One text encoder of a checkpoint, with its tokenizer and final norm, ready to encode prompts. */
export async function openTextEncoder(
  networks: Networks,
  name: NetworkName,
  tokenizer: ClipTokenizer,
  config: TextEncoderConfig,
  weights: WeightSource,
): Promise<TextEncoderHandle> {
  return {
    session: await networks.get(name),
    tokenizer,
    hiddenSize: config.hiddenSize,
    layers: config.numHiddenLayers,
    finalLayerNorm: {
      weight: weights.float32("text_model.final_layer_norm.weight"),
      bias: weights.float32("text_model.final_layer_norm.bias"),
      eps: config.layerNormEps,
    },
  };
}

/** A value computed once on first use and kept; a failure is not kept, so the next use tries again. */
export class Lazy<T> {
  private value: Promise<T> | undefined;

  constructor(private readonly make: () => Promise<T>) {}

  get(): Promise<T> {
    if (this.value) return this.value;
    const v = this.make();
    this.value = v;
    v.catch(() => {
      if (this.value === v) this.value = undefined;
    });
    return v;
  }
}

/** Text embeddings of one prompt: [tokens, hidden] with tokens = 77 x chunks. */
export interface Conditioning {
  data: Float32Array;
  tokens: number;
  hidden: number;
  /** The pooled, projected embedding of the prompt's first chunk (text_embeds), when asked for. */
  pooled?: Float32Array;
}

/**
 * Which state of the text encoder conditions the UNet: A1111's "clip skip" N (1 = last_hidden_state, N > 1 =
 * hidden_states[-N] through the final layer norm, as SD1 uses it), or "penultimate": hidden_states[-2] as it
 * is, without the final norm (SDXL's encoders).
 */
export type TextLayer = number | "penultimate";

export interface EncodeOptions {
  /** Pads every prompt with empty-prompt chunks to at least this many chunks (to match another encoder's). */
  chunks?: number;
  /** Also returns each prompt's pooled text_embeds (of its first chunk, as A1111 takes it). */
  pooled?: boolean;
}

/** How many 75-token chunks a prompt takes (at least 1). */
export function chunkCount(tokenizer: ClipTokenizer, prompt: string, embeddings?: EncoderEmbeddings): number {
  return encodePrompt(tokenizer, prompt, { embeddings: embeddings?.words }).ids.length;
}

/**
 * Encodes prompts the AUTOMATIC1111 way, which equals diffusers' for plain prompts under 75 tokens:
 * each 75-token chunk is encoded on its own (all chunks of all prompts in one batch), the chosen layer is taken
 * (see TextLayer), token weights scale the embeddings and the chunk's mean is restored, and chunks are
 * concatenated. Prompts with fewer chunks than the longest (or than `opts.chunks`) are padded with chunks of
 * the empty prompt, so the conditional and unconditional batch share one length.
 */
export async function encodePrompts(
  te: TextEncoderHandle,
  prompts: readonly string[],
  layer: TextLayer = 1,
  opts: EncodeOptions = {},
): Promise<Conditioning[]> {
  const clipSkip = layer === "penultimate" ? 2 : layer;
  if (!Number.isInteger(clipSkip) || clipSkip < 1 || clipSkip > te.layers) {
    throw new InputError(
      `clip skip ${clipSkip} is out of range: use an integer from 1 (the last layer) to ${te.layers}`,
    );
  }
  const words = te.embeddings?.words;
  const encoded = prompts.map((p) => encodePrompt(te.tokenizer, p, { embeddings: words }));
  const chunks = Math.max(opts.chunks ?? 1, ...encoded.map((e) => e.ids.length));
  const empty = encodePrompt(te.tokenizer, "");
  const padded: EncodedPrompt[] = encoded.map((e) => ({
    ids: [...e.ids, ...Array.from({ length: chunks - e.ids.length }, () => empty.ids[0]!)],
    weights: [...e.weights, ...Array.from({ length: chunks - e.weights.length }, () => empty.weights[0]!)],
    tokenCount: e.tokenCount,
    embeddings: e.embeddings,
  }));

  const allIds = padded.flatMap((e) => e.ids);
  const batch = allIds.length;
  const L = te.tokenizer.maxLength;
  const ids = BigInt64Array.from(allIds.flat(), (v) => BigInt(v));
  const outputs = [
    clipSkip === 1 ? CLIP_TEXT_IO.lastHidden : CLIP_TEXT_IO.hiddenStates,
    ...(opts.pooled ? [CLIP_TEXT_IO.textEmbeds] : []),
  ];
  const H = te.hiddenSize;
  const feeds: Parameters<Session["run"]>[0] = { [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [batch, L] } };
  // Graphs built for textual inversion always take the extra rows (one row of zeros when there are none).
  if (te.session.inputNames.includes(CLIP_TEXT_IO.extraTokens)) {
    const rows = te.embeddings && te.embeddings.rows.length > 0 ? te.embeddings.rows : new Float32Array(H);
    feeds[CLIP_TEXT_IO.extraTokens] = { data: rows, dims: [rows.length / H, H] };
  }
  const out = await te.session.run(feeds, outputs);
  const perChunk = L * H;
  let states: Float32Array;
  if (clipSkip === 1) {
    states = out[CLIP_TEXT_IO.lastHidden]!.data;
  } else {
    // hidden_states is [layers + 1, batch, L, H]; the clip-skip layer is index layers + 1 - clipSkip.
    const layerIndex = te.layers + 1 - clipSkip;
    const all = out[CLIP_TEXT_IO.hiddenStates]!.data.subarray(
      layerIndex * batch * perChunk,
      (layerIndex + 1) * batch * perChunk,
    );
    states = layer === "penultimate" ? all : layerNorm(all, te.finalLayerNorm, H);
  }
  const textEmbeds = opts.pooled ? out[CLIP_TEXT_IO.textEmbeds]?.data : undefined;
  if (opts.pooled && !textEmbeds)
    throw new Error("the text encoder has no text_embeds output: it was built without its projection");
  const P = textEmbeds ? textEmbeds.length / batch : 0;

  return padded.map((e, p) => {
    const data = new Float32Array(chunks * perChunk);
    for (let c = 0; c < chunks; c++) {
      const z = states.subarray((p * chunks + c) * perChunk, (p * chunks + c + 1) * perChunk);
      data.set(applyWeights(z, e.weights[c]!, H), c * perChunk);
    }
    const pooled = textEmbeds ? textEmbeds.slice(p * chunks * P, (p * chunks + 1) * P) : undefined;
    return { data, tokens: chunks * L, hidden: H, ...(pooled ? { pooled } : {}) };
  });
}

/** A1111's emphasis: z * weight per token, then rescaled so the chunk's mean is what it was. */
function applyWeights(z: Float32Array, weights: readonly number[], hidden: number): Float32Array {
  if (weights.every((w) => w === 1)) return z;
  let before = 0;
  for (const v of z) before += v;
  const out = new Float32Array(z.length);
  let after = 0;
  for (let t = 0; t < weights.length; t++) {
    const w = weights[t]!;
    for (let i = t * hidden; i < (t + 1) * hidden; i++) after += out[i] = z[i]! * w;
  }
  const scale = Math.fround(before / z.length) / Math.fround(after / z.length);
  for (let i = 0; i < out.length; i++) out[i]! *= scale;
  return out;
}

function layerNorm(x: Float32Array, ln: FinalLayerNorm, hidden: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let off = 0; off < x.length; off += hidden) {
    let mean = 0;
    for (let i = 0; i < hidden; i++) mean += x[off + i]!;
    mean /= hidden;
    let variance = 0;
    for (let i = 0; i < hidden; i++) variance += (x[off + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / hidden + ln.eps);
    for (let i = 0; i < hidden; i++) out[off + i] = (x[off + i]! - mean) * inv * ln.weight[i]! + ln.bias[i]!;
  }
  return out;
}
