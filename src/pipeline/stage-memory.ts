import { totalmem } from "node:os";
import type { WeightSource } from "../weights/weight-source.js";

/**
 * Which networks a generation keeps loaded once its stage is over. The text encoders run once at the start of a
 * generation and the VAE decoder once at its end, on the largest tensors of it; kept loaded, both sit idle in memory
 * while the other works. SDXL at 1024 px held 12.9 GiB of fp32 weights (3 GiB of them the two text encoders) plus
 * the decoder's 4.4 GiB of working memory at once, 18.1 GB in all. Released once done with, the text encoders'
 * weights and the decode's working memory are never held together (the peak becomes the UNet's weights and working
 * memory plus the decode's), at the cost of reopening them at the next generation: 2.7 s for SDXL's text encoders
 * on 2 cores, against minutes for a generation at that size.
 *
 * - "keep": every network stays loaded between generations (the fastest next generation);
 * - "release": the text encoders are released after the prompts are encoded and the VAE decoder after the last
 *   decode of a generation, when no other generation is running;
 * - "auto" (default): "release" when memory is short, that is when the weights of the model and the decode's working
 *   memory would take more than half of the machine's memory; otherwise "keep".
 */
export type StageMemory = "auto" | "keep" | "release";

/**
 * Working memory of a VAE decode per output pixel (onnxruntime's arena at its peak): the decoder's widest tensors
 * are at full resolution (256 channels, 4 bytes each, several alive at once). Measured with SD's VAE (SD1.5, SD2,
 * SDXL share it) on onnxruntime 1.30: 1.2 GiB at 512x512, 4.4 GiB at 1024x1024.
 */
export const DECODE_BYTES_PER_PIXEL = 4.5 * 1024;

/** The channels of SD's VAE decoder at full resolution, which DECODE_BYTES_PER_PIXEL was measured with. */
export const DECODE_MEASURED_CHANNELS = 256;

/**
 * The working memory a VAE decode of a `width` x `height` image takes (see DECODE_BYTES_PER_PIXEL), for a decoder
 * whose widest full-resolution tensors have `channels` channels (SD's 256 by default): the same tensors alive at
 * once, each as wide as the decoder's.
 */
export function decodeWorkingBytes(width: number, height: number, channels = DECODE_MEASURED_CHANNELS): number {
  return width * height * DECODE_BYTES_PER_PIXEL * (channels / DECODE_MEASURED_CHANNELS);
}

/** The bytes the sessions hold for these weights: every tensor as fp32, whatever its precision in the file. */
export function fp32WeightBytes(sources: readonly (WeightSource | undefined)[]): number {
  let bytes = 0;
  for (const s of sources) {
    if (!s) continue;
    for (const key of s.keys()) bytes += 4 * s.shape(key).reduce((a, b) => a * b, 1);
  }
  return bytes;
}

/** Whether the generation releases its networks once done with them (see StageMemory). */
export function releasesFinishedNetworks(
  mode: StageMemory,
  need: { weightBytes: number; decodeBytes: number },
  machineBytes: number = totalmem(),
): boolean {
  if (mode !== "auto") return mode === "release";
  return need.weightBytes + need.decodeBytes > machineBytes / 2;
}
