import type { Mask, RgbImage } from "../image/codec.js";
import { imageToTensor } from "../image/tensor.js";
import type { LatentSpace } from "./latent-space.js";
import type { VaeCodec } from "./vae-codec.js";

/**
 * Inpainting, both ways the reference does it:
 * - an inpainting checkpoint (UNet with latent channels x 2 + 1 inputs) sees the mask and the masked image's
 *   latents beside the noisy latents at every step;
 * - an ordinary checkpoint inpaints by putting the known region back after every step, at the noise level of
 *   the next timestep (diffusers' legacy inpainting, A1111's "original" fill).
 */

/** The extra UNet channels of an inpainting checkpoint for a batch: the mask at latent size, then the masked image's latents. */
export interface InpaintChannels {
  mask: Float32Array;
  maskedLatents: Float32Array;
}

/**
 * The binarized mask at latent size and the latents of the image with the masked region blanked (0 in [-1, 1],
 * mid grey). Without an init image everything is repainted from a blank image, which is how such checkpoints
 * do text-to-image; with an image but no mask, nothing is.
 */
export async function inpaintChannels(
  codec: VaeCodec,
  init: RgbImage | undefined,
  mask: Mask | undefined,
  width: number,
  height: number,
  batch: number,
): Promise<InpaintChannels> {
  const { factor } = codec.space;
  const [h, w] = [height / factor, width / factor];
  const pixels = width * height;
  const repaint = new Uint8Array(pixels).fill(1);
  if (init && mask) for (let i = 0; i < pixels; i++) repaint[i] = mask.data[i]! >= 0.5 ? 1 : 0;
  else if (init) repaint.fill(0);
  const image = init ? imageToTensor(init).data : new Float32Array(3 * pixels);
  for (let c = 0; c < 3; c++) for (let i = 0; i < pixels; i++) if (repaint[i]) image[c * pixels + i] = 0;
  const latents = await codec.encodeMean({ data: image, shape: [1, 3, height, width] });
  // Nearest-neighbour downsampling of the binary mask, as the reference interpolates it to latent size.
  const small = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) small[y * w + x] = repaint[y * factor * width + x * factor]!;
  return { mask: repeatBatch(small, batch), maskedLatents: repeatBatch(latents, batch) };
}

/** The mask at latent size as "keep" weights (1 = keep the original), repeated over channels and batch. */
export function latentKeepMask(mask: Mask, space: LatentSpace, batch: number, h: number, w: number): Float32Array {
  const out = new Float32Array(batch * space.channels * h * w);
  const sy = mask.height / h;
  const sx = mask.width / w;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Average the pixel block under the latent cell: a soft edge where the mask crosses it.
      let sum = 0,
        n = 0;
      for (let yy = Math.floor(y * sy); yy < Math.floor((y + 1) * sy); yy++) {
        for (let xx = Math.floor(x * sx); xx < Math.floor((x + 1) * sx); xx++) {
          sum += mask.data[yy * mask.width + xx]!;
          n++;
        }
      }
      const keepValue = 1 - (n ? sum / n : 0);
      for (let b = 0; b < batch * space.channels; b++) out[b * h * w + y * w + x] = keepValue;
    }
  }
  return out;
}

/**
 * A1111's latent fills of the masked region, before the init latents are noised: "latent noise" puts `noise` there
 * (init * keep + noise * (1 - keep)), "latent nothing" zeros (init * keep).
 */
export function fillMaskedLatents(
  init: Float32Array,
  keep: Float32Array,
  fill: "latent noise" | "latent nothing",
  noise: Float32Array,
): Float32Array {
  return init.map((v, i) => v * keep[i]! + (fill === "latent noise" ? noise[i]! * (1 - keep[i]!) : 0));
}

function repeatBatch(a: Float32Array, batch: number): Float32Array {
  const r = new Float32Array(batch * a.length);
  for (let b = 0; b < batch; b++) r.set(a, b * a.length);
  return r;
}
