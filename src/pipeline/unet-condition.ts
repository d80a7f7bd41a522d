import type { TextualInversions } from "./textual-inversions.js";

/**
 * What a prompt conditions the UNet with, in the family's own form: extra graph inputs by name, each one image's
 * worth (no batch dimension). SD1 and SD2 give `encoder_hidden_states` alone; SDXL adds the pooled text embeds
 * and the size/crop time ids. The denoising loop batches them without knowing which family made them.
 */
export type UNetCondition = ReadonlyMap<string, { readonly data: Float32Array; readonly dims: readonly number[] }>;

/** The negative and the positive prompt's conditions, with equal shapes, as every family stage returns them. */
export interface PromptConditions {
  readonly uncond: UNetCondition;
  readonly cond: UNetCondition;
}

/**
 * The batched UNet inputs for `batch` images: with guidance, the unconditional copies first and then the
 * conditional ones (the order diffusers concatenates them in); without, the conditional ones alone.
 */
export function batchConditions(
  c: PromptConditions,
  batch: number,
  guided: boolean,
): Record<string, { data: Float32Array; dims: number[] }> {
  const out: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const [name, cond] of c.cond) {
    const uncond = c.uncond.get(name);
    if (guided && (!uncond || uncond.data.length !== cond.data.length)) {
      throw new Error(
        `conditions for ${name}: the negative prompt's has ${uncond?.data.length ?? 0} values, the prompt's ${cond.data.length}`,
      );
    }
    const copies = guided ? 2 * batch : batch;
    const data = new Float32Array(copies * cond.data.length);
    for (let j = 0; j < batch; j++) {
      if (guided) data.set(uncond!.data, j * cond.data.length);
      data.set(cond.data, ((guided ? batch : 0) + j) * cond.data.length);
    }
    out[name] = { data, dims: [copies, ...cond.dims] };
  }
  return out;
}

/** What a family's conditioning stage is asked for. */
export interface ConditioningRequest {
  readonly prompt: string;
  readonly negativePrompt: string;
  /** SDXL's prompt for its second encoder (diffusers' prompt_2); absent: the prompt. */
  readonly prompt2?: string;
  /** SDXL's negative prompt for its second encoder (negative_prompt_2); absent: the negative prompt. */
  readonly negativePrompt2?: string;
  /**
   * Whether the loop runs the unconditional half (classifier-free guidance on). Without it the negative prompts are
   * not encoded, as diffusers skips them: the prompt's conditions stand for both halves, and a longer negative
   * prompt does not pad the prompt to its length.
   */
  readonly guided: boolean;
  /** A1111's "clip skip": 1 = the last layer. */
  readonly clipSkip: number;
  /** The image size (SDXL conditions on it). */
  readonly width: number;
  readonly height: number;
  /** Textual-inversion embeddings the prompts may name (their trigger words become their vectors). */
  readonly embeddings?: TextualInversions;
}

/** A family's conditioning stage: prompts in, UNet conditions out (sd-conditioner.ts, ...). */
export interface Conditioner {
  encode(request: ConditioningRequest): Promise<PromptConditions>;
}
