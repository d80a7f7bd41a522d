import { InternalError } from "../errors.js";
import { encodePng, type RgbImage } from "./codec.js";
import { signedToByte, type Nchw } from "./tensor.js";

/**
 * A linear map from latent channels to RGB: rgb[k] = sum_c latent[c] * matrix[c][k] + bias[k], giving values
 * in the VAE's output range [-1, 1]. One row per latent channel.
 */
export interface LatentRgbFactors {
  readonly matrix: ReadonlyArray<readonly [number, number, number]>;
  readonly bias: readonly [number, number, number];
}

/**
 * SD1.x (the 1.4 and 1.5 checkpoints share one VAE). These are the coefficients the forum user keturn
 * fitted empirically by comparing SD 1.4 latents in the UNet's space (already scaled by 0.18215) with their
 * full VAE decodes, posted on the Hugging Face forum in 2022 ("Decoding latents to RGB without upscaling");
 * they are the numbers most UIs use for their cheap SD1 preview. Channel 1 carries mostly brightness and
 * channel 4 mostly a blue/yellow axis. The fit had no constant term, so the bias is zero; mid-grey is what
 * an all-zero latent previews as. The author notes the result is slightly undersaturated; it is a preview.
 */
export const SD1_LATENT_RGB: LatentRgbFactors = {
  matrix: [
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
  ],
  bias: [0, 0, 0],
};

export interface PreviewOptions {
  /** Which image of the batch to show (default 0). */
  readonly index?: number;
  /** Nearest-neighbour upscale factor: 1 keeps latent size (64x64 for 512x512), 8 gives the image size. */
  readonly scale?: 1 | 8;
  readonly factors?: LatentRgbFactors;
}

/**
 * An instant approximation of what latents [N, C, h, w] will decode to, without running the VAE: for
 * progress previews at every step. Returns RGB at latent size, or x8 when asked.
 */
export function latentPreview(latents: Float32Array, shape: Nchw, options: PreviewOptions = {}): RgbImage {
  const [n, c, h, w] = shape;
  const { index = 0, scale = 1, factors = SD1_LATENT_RGB } = options;
  if (c !== factors.matrix.length) {
    throw new InternalError(
      `latent preview factors have ${factors.matrix.length} rows but the latents have ${c} channels (shape [${shape.join(", ")}])`,
    );
  }
  if (latents.length !== n * c * h * w) {
    throw new InternalError(
      `latents of shape [${shape.join(", ")}] need ${n * c * h * w} values, got ${latents.length}`,
    );
  }
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new InternalError(`preview index ${index} is outside the batch of ${n}`);
  }
  const plane = h * w;
  const base = index * c * plane;
  const small = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let k = 0; k < 3; k++) {
      let v = factors.bias[k]!;
      for (let ch = 0; ch < c; ch++) v += latents[base + ch * plane + i]! * factors.matrix[ch]![k]!;
      small[3 * i + k] = signedToByte(v);
    }
  }
  if (scale === 1) return { width: w, height: h, data: small };

  // Nearest neighbour keeps the latent grid visible, which is honest about what a preview is (and cheap).
  const W = w * scale;
  const H = h * scale;
  const big = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    const srcRow = Math.floor(y / scale) * w;
    for (let x = 0; x < W; x++) {
      const s = 3 * (srcRow + Math.floor(x / scale));
      const d = 3 * (y * W + x);
      big[d] = small[s]!;
      big[d + 1] = small[s + 1]!;
      big[d + 2] = small[s + 2]!;
    }
  }
  return { width: W, height: H, data: big };
}

/** The preview encoded as PNG, ready to send to the web page. */
export function latentPreviewPng(latents: Float32Array, shape: Nchw, options: PreviewOptions = {}): Promise<Buffer> {
  return encodePng(latentPreview(latents, shape, options));
}
