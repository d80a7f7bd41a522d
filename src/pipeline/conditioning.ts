import { InputError } from "../errors.js";
import { CLIP_TEXT_IO } from "../models/clip-text.js";
import type { Session } from "../runtime/session.js";
import { encodePrompt, type EncodedPrompt } from "../tokenizer/chunks.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";

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
}

/** Text embeddings of one prompt: [tokens, hidden] with tokens = 77 x chunks. */
export interface Conditioning {
  data: Float32Array;
  tokens: number;
  hidden: number;
}

/**
 * Encodes prompts the AUTOMATIC1111 way, which equals diffusers' for plain prompts under 75 tokens:
 * each 75-token chunk is encoded on its own (all chunks of all prompts in one batch), the chosen layer is taken
 * (clip skip 1 = the last, with the final layer norm; clip skip N = the N-th from last, normed the same way),
 * token weights scale the embeddings and the chunk's mean is restored, and chunks are concatenated.
 * Prompts with fewer chunks than the longest are padded with chunks of the empty prompt, so the
 * conditional and unconditional batch share one length.
 */
export async function encodePrompts(te: TextEncoderHandle, prompts: readonly string[], clipSkip = 1): Promise<Conditioning[]> {
  if (!Number.isInteger(clipSkip) || clipSkip < 1 || clipSkip > te.layers) {
    throw new InputError(`clip skip ${clipSkip} is out of range: use an integer from 1 (the last layer) to ${te.layers}`);
  }
  const encoded = prompts.map((p) => encodePrompt(te.tokenizer, p));
  const chunks = Math.max(...encoded.map((e) => e.ids.length));
  const empty = encodePrompt(te.tokenizer, "");
  const padded: EncodedPrompt[] = encoded.map((e) => ({
    ids: [...e.ids, ...Array.from({ length: chunks - e.ids.length }, () => empty.ids[0]!)],
    weights: [...e.weights, ...Array.from({ length: chunks - e.weights.length }, () => empty.weights[0]!)],
    tokenCount: e.tokenCount,
  }));

  const allIds = padded.flatMap((e) => e.ids);
  const batch = allIds.length;
  const L = te.tokenizer.maxLength;
  const ids = BigInt64Array.from(allIds.flat(), (v) => BigInt(v));
  const out = await te.session.run({ [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [batch, L] } }, clipSkip === 1 ? [CLIP_TEXT_IO.lastHidden] : [CLIP_TEXT_IO.hiddenStates]);
  const H = te.hiddenSize;
  const perChunk = L * H;
  let states: Float32Array;
  if (clipSkip === 1) {
    states = out[CLIP_TEXT_IO.lastHidden]!.data;
  } else {
    // hidden_states is [layers + 1, batch, L, H]; the clip-skip layer is index layers + 1 - clipSkip.
    const layer = te.layers + 1 - clipSkip;
    const all = out[CLIP_TEXT_IO.hiddenStates]!.data;
    states = layerNorm(all.slice(layer * batch * perChunk, (layer + 1) * batch * perChunk), te.finalLayerNorm, H);
  }

  return padded.map((e, p) => {
    const data = new Float32Array(chunks * perChunk);
    for (let c = 0; c < chunks; c++) {
      const z = states.subarray((p * chunks + c) * perChunk, (p * chunks + c + 1) * perChunk);
      data.set(applyWeights(z, e.weights[c]!, H), c * perChunk);
    }
    return { data, tokens: chunks * L, hidden: H };
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
