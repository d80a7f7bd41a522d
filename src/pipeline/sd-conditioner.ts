import type { TextEncoderConfig } from "../configs/text-encoder.js";
import { UNET_IO } from "../models/unet.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { WeightSource } from "../weights/weight-source.js";
import { encodePrompts, Lazy, openTextEncoder, type TextEncoderHandle } from "./conditioning.js";
import type { Networks } from "./networks.js";
import type { Conditioner, ConditioningRequest, PromptConditions } from "./unet-condition.js";

export interface SdConditionerOptions {
  /**
   * Whether A1111's clip skip applies. It does for SD1's CLIP; SD2's OpenCLIP embedder in A1111 always takes the
   * penultimate layer (its 23-layer encoder's last_hidden_state here) and ignores the setting, so SD2 does too.
   */
  clipSkip: boolean;
}

/**
 * The conditioning of SD1.x and SD2.x: one CLIP text encoder (OpenAI's ViT-L for SD1, OpenCLIP ViT-H for SD2),
 * whose states condition the UNet's cross-attention, encoded the A1111 way (conditioning.ts: 75-token chunks,
 * weights, clip skip). The second prompts of SDXL have no encoder here and are not used.
 */
export class SdConditioner implements Conditioner {
  /** Built on first use and kept: the final layer norm's weights are read from the checkpoint once. */
  private readonly encoder: Lazy<TextEncoderHandle>;

  constructor(
    private readonly networks: Networks,
    tokenizer: ClipTokenizer,
    config: TextEncoderConfig,
    weights: WeightSource,
    private readonly opts: SdConditionerOptions,
  ) {
    this.encoder = new Lazy(() => openTextEncoder(networks, "text_encoder", tokenizer, config, weights));
  }

  async encode(r: ConditioningRequest): Promise<PromptConditions> {
    const handle = await this.encoder.get();
    // The session is asked for at each use: merging another LoRA reopens it.
    const te = {
      ...handle,
      session: await this.networks.get("text_encoder"),
      embeddings: r.embeddings?.forEncoder(0, handle.tokenizer),
    };
    const encoded = await encodePrompts(
      te,
      r.guided ? [r.negativePrompt, r.prompt] : [r.prompt],
      this.opts.clipSkip ? r.clipSkip : 1,
    );
    const [uncond, cond] = [encoded[0]!, encoded[encoded.length - 1]!];
    const input = (c: { data: Float32Array; tokens: number; hidden: number }) =>
      new Map([[UNET_IO.encoderHiddenStates, { data: c.data, dims: [c.tokens, c.hidden] }]]);
    return { uncond: input(uncond), cond: input(cond) };
  }
}
