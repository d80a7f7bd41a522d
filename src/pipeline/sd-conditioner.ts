import type { TextEncoderConfig } from "../configs/text-encoder.js";
import { UNET_IO } from "../models/unet.js";
import type { ClipTokenizer } from "../tokenizer/clip-tokenizer.js";
import type { WeightSource } from "../weights/weight-source.js";
import { encodePrompts, type TextEncoderHandle } from "./conditioning.js";
import type { Networks } from "./networks.js";
import type { Conditioner, ConditioningRequest, PromptConditions } from "./unet-condition.js";

/**
 * The conditioning of SD1.x and SD2.x: one CLIP text encoder (OpenAI's ViT-L for SD1, OpenCLIP ViT-H for SD2),
 * whose states condition the UNet's cross-attention, encoded the A1111 way (conditioning.ts: 75-token chunks,
 * weights, clip skip).
 */
export class SdConditioner implements Conditioner {
  /** Built on first use and kept: the final layer norm's weights are read from the checkpoint once. */
  private handle: Promise<TextEncoderHandle> | undefined;

  constructor(
    private readonly networks: Networks,
    private readonly tokenizer: ClipTokenizer,
    private readonly config: TextEncoderConfig,
    private readonly weights: WeightSource,
  ) {}

  async encode(r: ConditioningRequest): Promise<PromptConditions> {
    const [uncond, cond] = await encodePrompts(await this.textEncoder(), [r.negativePrompt, r.prompt], r.clipSkip);
    const input = (c: { data: Float32Array; tokens: number; hidden: number }) => new Map([[UNET_IO.encoderHiddenStates, { data: c.data, dims: [c.tokens, c.hidden] }]]);
    return { uncond: input(uncond!), cond: input(cond!) };
  }

  private textEncoder(): Promise<TextEncoderHandle> {
    if (this.handle) return this.handle;
    this.handle = (async () => ({
      session: await this.networks.get("text_encoder"),
      tokenizer: this.tokenizer,
      hiddenSize: this.config.hiddenSize,
      layers: this.config.numHiddenLayers,
      finalLayerNorm: {
        weight: this.weights.float32("text_model.final_layer_norm.weight"),
        bias: this.weights.float32("text_model.final_layer_norm.bias"),
        eps: this.config.layerNormEps,
      },
    }))();
    // A failed load is not remembered: the next generation tries again.
    this.handle.catch(() => (this.handle = undefined));
    return this.handle;
  }
}
