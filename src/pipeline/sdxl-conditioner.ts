import { TEXT_CONDITIONING, type ModelFamily } from "../configs/pipeline.js";
import type { TextEncoderConfig } from "../configs/text-encoder.js";
import { UNET_IO } from "../models/unet.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { WeightSource } from "../weights/weight-source.js";
import {
  chunkCount,
  encodePrompts,
  Lazy,
  openTextEncoder,
  type Conditioning,
  type TextEncoderHandle,
} from "./conditioning.js";
import type { NetworkName, Networks } from "./networks.js";
import type { Conditioner, ConditioningRequest, PromptConditions, UNetCondition } from "./unet-condition.js";

/** One of SDXL's text encoders and which of the request's prompts it reads. */
export interface SdxlEncoder {
  network: NetworkName;
  tokenizer: ClipTokenizer;
  config: TextEncoderConfig;
  weights: WeightSource;
  /** "first": prompt / negative prompt; "second": prompt_2 / negative_prompt_2 (each defaulting to the first). */
  prompts: "first" | "second";
}

export interface SdxlConditionerOptions {
  family: Extract<ModelFamily, "sdxl" | "sdxl-refiner">;
  /**
   * model_index.json's force_zeros_for_empty_prompt (true for SDXL base, and the default of diffusers' SDXL
   * pipelines): an empty negative prompt conditions with zeros, hidden states and pooled embeds alike, as
   * diffusers does for a missing negative prompt and A1111 for an empty one.
   */
  forceZerosForEmptyPrompt: boolean;
}

/**
 * diffusers' (and A1111's) aesthetic scores for the refiner's time ids: 6 for the prompt, 2.5 for the negative
 * (StableDiffusionXLImg2ImgPipeline's aesthetic_score / negative_aesthetic_score; A1111's
 * sdxl_refiner_high/low_aesthetic_score).
 */
export const AESTHETIC_SCORE = { positive: 6.0, negative: 2.5 } as const;

/**
 * The conditioning of SDXL base and refiner (diffusers' StableDiffusionXLPipeline.encode_prompt, A1111's
 * sgm conditioner): each encoder's hidden_states[-2] without the final norm, concatenated on the feature axis
 * in encoder order (base: CLIP-L 768 | bigG 1280 = 2048; refiner: bigG alone), the last encoder's pooled
 * text_embeds, and the time ids (base: original size, crop top-left, target size; refiner: original size, crop,
 * aesthetic score). Original and target size are the generation size and the crop is 0,0, the defaults of
 * diffusers and A1111. Long prompts and weights go as A1111 does them: 75-token chunks per encoder (each
 * encoder's prompts padded to the longest with empty chunks), emphasis on each encoder's states, pooled from
 * the first chunk. Clip skip does not apply (A1111 ignores it for SDXL unless its "sdxl_clip_l_skip" option is
 * set).
 */
export class SdxlConditioner implements Conditioner {
  private readonly encoders: { spec: SdxlEncoder; handle: Lazy<TextEncoderHandle> }[];

  constructor(
    private readonly networks: Networks,
    encoders: readonly SdxlEncoder[],
    private readonly opts: SdxlConditionerOptions,
  ) {
    this.encoders = encoders.map((spec) => ({
      spec,
      handle: new Lazy(() => openTextEncoder(networks, spec.network, spec.tokenizer, spec.config, spec.weights)),
    }));
  }

  async encode(r: ConditioningRequest): Promise<PromptConditions> {
    /** Each encoder's [negative, prompt], or [prompt] alone without guidance. */
    const texts = (prompts: SdxlEncoder["prompts"]): string[] => {
      const [negative, prompt] =
        prompts === "first"
          ? [r.negativePrompt, r.prompt]
          : [r.negativePrompt2 ?? r.negativePrompt, r.prompt2 ?? r.prompt];
      return r.guided ? [negative, prompt] : [prompt];
    };
    const embeddings = this.encoders.map((e, i) => r.embeddings?.forEncoder(i, e.spec.tokenizer));
    // Every encoder's states are concatenated token by token, so all prompts take the longest one's chunk count.
    const chunks = Math.max(
      ...this.encoders.flatMap((e, i) =>
        texts(e.spec.prompts).map((t) => chunkCount(e.spec.tokenizer, t, embeddings[i])),
      ),
    );
    const last = this.encoders.length - 1;
    const encoded: Conditioning[][] = [];
    for (const [i, e] of this.encoders.entries()) {
      // The session is asked for at each use: merging another LoRA reopens it.
      const te = {
        ...(await e.handle.get()),
        session: await this.networks.get(e.spec.network),
        embeddings: embeddings[i],
      };
      encoded.push(await encodePrompts(te, texts(e.spec.prompts), "penultimate", { chunks, pooled: i === last }));
    }
    const zeroNegative =
      r.guided && this.opts.forceZerosForEmptyPrompt && this.encoders.every((e) => texts(e.spec.prompts)[0] === "");
    const condition = (side: 0 | 1): UNetCondition => {
      const parts = encoded.map((per) => per[side === 1 ? per.length - 1 : 0]!);
      const hidden =
        zeroNegative && side === 0 ? new Float32Array(sum(parts.map((c) => c.data.length))) : concatFeatures(parts);
      const pooled = parts[last]!.pooled!;
      return new Map([
        [UNET_IO.encoderHiddenStates, { data: hidden, dims: [parts[0]!.tokens, sum(parts.map((c) => c.hidden))] }],
        [
          UNET_IO.textEmbeds,
          { data: zeroNegative && side === 0 ? new Float32Array(pooled.length) : pooled, dims: [pooled.length] },
        ],
        [
          UNET_IO.timeIds,
          { data: this.timeIds(r, side === 0), dims: [TEXT_CONDITIONING[this.opts.family].timeIds.length] },
        ],
      ]);
    };
    const cond = condition(1);
    return { uncond: r.guided ? condition(0) : cond, cond };
  }

  /** The family's time ids for an image of the request's size, in TEXT_CONDITIONING's order. */
  private timeIds(r: ConditioningRequest, negative: boolean): Float32Array {
    const value: Record<string, number> = {
      original_height: r.height,
      original_width: r.width,
      crop_top: 0,
      crop_left: 0,
      target_height: r.height,
      target_width: r.width,
      aesthetic_score: negative ? AESTHETIC_SCORE.negative : AESTHETIC_SCORE.positive,
    };
    return Float32Array.from(TEXT_CONDITIONING[this.opts.family].timeIds, (name) => {
      const v = value[name];
      if (v === undefined) throw new Error(`no value for the SDXL time id "${name}"`);
      return v;
    });
  }
}

/** [tokens, h_i] states of each encoder side by side: [tokens, sum h_i]. */
function concatFeatures(parts: readonly Conditioning[]): Float32Array {
  const tokens = parts[0]!.tokens;
  const width = sum(parts.map((c) => c.hidden));
  const out = new Float32Array(tokens * width);
  for (let t = 0; t < tokens; t++) {
    let offset = t * width;
    for (const c of parts) {
      if (c.tokens !== tokens) throw new Error(`text encoders disagree on the token count: ${c.tokens} vs ${tokens}`);
      out.set(c.data.subarray(t * c.hidden, (t + 1) * c.hidden), offset);
      offset += c.hidden;
    }
  }
  return out;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
