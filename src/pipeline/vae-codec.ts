import type { RgbImage } from "../image/codec.js";
import { imageToTensor, tensorToImages } from "../image/tensor.js";
import { VAE_IO } from "../models/vae.js";
import type { NoiseSource } from "../schedulers/scheduler.js";
import type { LatentSpace } from "./latent-space.js";
import type { VaeSessions } from "./vae-model.js";

/** A decoder that stands in for the VAE's (a TAESD: `--vae taesd`): image `index` of latents [B, C, h, w]. */
export type FastDecoder = (
  latents: Float32Array,
  shape: readonly [number, number, number, number],
  index: number,
) => Promise<RgbImage>;

/** Images to latents and back through the model's VAE, with its scaling factor applied. */
export class VaeCodec {
  constructor(
    /** The checkpoint's networks, or a VAE loaded instead of its own. */
    private readonly networks: VaeSessions,
    readonly space: LatentSpace,
    /** When given, final images are decoded by it instead of the VAE (encoding still uses the VAE). */
    private readonly fastDecoder?: FastDecoder,
  ) {}

  /**
   * An init image as scaled latents for each image of a batch: one posterior sample per image, drawn from that
   * image's generator (diffusers' `retrieve_latents` with sample_mode "sample"), in float32 as the reference.
   */
  async encode(init: RgbImage, noise: NoiseSource, batch: number): Promise<Float32Array> {
    const { mean, logvar, dims } = await this.posterior(imageToTensor(init));
    const eps = noise.randn([batch, ...dims.slice(1)]);
    const latents = new Float32Array(batch * mean.length);
    for (let j = 0; j < batch; j++) this.sample(mean, logvar, eps, latents, j * mean.length);
    return latents;
  }

  /**
   * Several images (of one size) as scaled latents [B, C, h, w], each its own posterior sample; the samples' noise
   * is one draw of the whole batch's shape from `noise`.
   */
  async encodeImages(images: readonly RgbImage[], noise: NoiseSource): Promise<Float32Array> {
    let latents: Float32Array | undefined;
    let eps: Float32Array | undefined;
    for (let j = 0; j < images.length; j++) {
      const { mean, logvar, dims } = await this.posterior(imageToTensor(images[j]!));
      eps ??= noise.randn([images.length, ...dims.slice(1)]);
      latents ??= new Float32Array(images.length * mean.length);
      this.sample(mean, logvar, eps, latents, j * mean.length);
    }
    return latents ?? new Float32Array(0);
  }

  /** mean + std * eps, scaled, into `out` at `offset` (eps read at the same offset), float32 as the reference. */
  private sample(mean: Float32Array, logvar: Float32Array, eps: Float32Array, out: Float32Array, offset: number): void {
    const scale = this.space.scalingFactor;
    for (let k = 0; k < mean.length; k++) {
      const std = Math.fround(Math.exp(Math.fround(0.5 * logvar[k]!)));
      out[offset + k] = Math.fround(Math.fround(mean[k]! + Math.fround(std * eps[offset + k]!)) * scale);
    }
  }

  /** The posterior's mean, scaled: what inpainting checkpoints see of the masked image (diffusers' "argmax"). */
  async encodeMean(image: { data: Float32Array; shape: readonly number[] }): Promise<Float32Array> {
    const { mean } = await this.posterior(image);
    return mean.map((v) => v * this.space.scalingFactor);
  }

  /** Scaled latents [B, C, h, w] to images, one at a time (batching the decoder gains nothing on a CPU). */
  async decode(latents: Float32Array, batch: number, width: number, height: number): Promise<RgbImage[]> {
    const { channels, factor, scalingFactor } = this.space;
    if (this.fastDecoder) {
      const shape = [batch, channels, height / factor, width / factor] as const;
      const images: RgbImage[] = [];
      for (let j = 0; j < batch; j++) images.push(await this.fastDecoder(latents, shape, j));
      return images;
    }
    const dec = await this.networks.get("vae_decoder");
    const per = latents.length / batch;
    const images: RgbImage[] = [];
    for (let j = 0; j < batch; j++) {
      const z = latents.subarray(j * per, (j + 1) * per).map((v) => v / scalingFactor);
      const out = await dec.run({ [VAE_IO.latent]: { data: z, dims: [1, channels, height / factor, width / factor] } });
      images.push(...tensorToImages(out[VAE_IO.decoded]!.data, [1, 3, height, width]));
    }
    return images;
  }

  private async posterior(image: {
    data: Float32Array;
    shape: readonly number[];
  }): Promise<{ mean: Float32Array; logvar: Float32Array; dims: readonly number[] }> {
    const enc = await this.networks.get("vae_encoder");
    const out = await enc.run({ [VAE_IO.image]: { data: image.data, dims: image.shape } });
    return { mean: out[VAE_IO.mean]!.data, logvar: out[VAE_IO.logvar]!.data, dims: out[VAE_IO.mean]!.dims };
  }
}
