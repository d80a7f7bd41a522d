import { freemem, totalmem } from "node:os";
import { timeIdCount } from "../configs/pipeline.js";
import { buildUNet } from "../models/unet.js";
import { buildVaeDecoder } from "../models/vae.js";
import type { AttentionKind } from "../onnx/builder.js";
import { graphFlopsByGrowth } from "../onnx/flops.js";
import { findSampler } from "../schedulers/index.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { ScopedWeights } from "../weights/weight-source.js";
import type { ResolvedParams } from "./params.js";
import { decodeWorkingBytes, fp32WeightBytes } from "./stage-memory.js";

/**
 * What the memory and time of a generation depend on, for one model: plain numbers, so that a server can hold them
 * for a model loaded in another thread and check a request at acceptance.
 */
export interface ModelProfile {
  /** The bytes the sessions hold for each network's weights (fp32, whatever the file's precision). */
  weights: { unet: number; vae: number; textEncoders: number; refiner: number };
  /** Pixels per latent position along each side (8). */
  latentFactor: number;
  /** The UNet's channels at its first (full latent resolution) level, where its widest tensors are. */
  unetChannels: number;
  /** The channels of the VAE decoder's widest tensors at full image resolution (256 for SD's VAE). */
  decoderChannels: number;
  /**
   * FLOPs of one UNet call on one row (one image, one half of a guided batch): `linear` per latent position,
   * `quadratic` (self-attention) per latent position squared.
   */
  unetFlops: { linear: number; quadratic: number };
  /** FLOPs of one VAE decode: `linear` per latent position, `quadratic` per latent position squared. */
  decodeFlops: { linear: number; quadratic: number };
  /** Whether guidance (cfgScale > 1) doubles the UNet's rows: false for LCM's guidance embedding. */
  guidanceDoublesRows: boolean;
}

/**
 * The process besides the networks: Node, onnxruntime and sharp loaded, the tokenizer, buffers. Measured as the peak
 * RSS of `diffuse generate` on the embedded model at 64x64 (205 MB, its weights a few MB of it).
 */
export const RUNTIME_BASE_BYTES = 200 * 1024 ** 2;

/**
 * The UNet's working memory (onnxruntime's arena at its peak) in tensors of its first level's width, per row and
 * latent position. Attention runs in onnxruntime's fused MultiHeadAttention (networks.ts), whose CPU kernel works
 * through the scores in tiles: no [heads, L, L] matrix is held, and the working memory grows with the positions,
 * not their square (the embedded model's peak RSS grew by 0.78 KB per pixel from 256 to 1024 px, linearly).
 * Fitted to the peak RSS of the embedded model (64 channels) at 256-1024 px and SD 1.5 (320 channels) at 256-768
 * px, batch sizes 1, 3 and 4: within 16% of each (the embedded model at batch size 4 is the one under).
 */
export const UNET_TENSORS = 20;

/**
 * A ControlNet holds about the weights of the UNet's encoder half (SD 1.5's: 361 M parameters against the UNet's
 * 860 M); it runs before the UNet at each step, on the same latents, so its working memory is not held beside it.
 */
export const CONTROLNET_WEIGHT_SHARE = 0.42;

/**
 * FLOP/s one onnxruntime thread sustains on convolutions and projections (fp32): SD 1.5's guided 512 px UNet step
 * (1.6 TFLOP by graphFlops, most of it convolutions) took 8.3 s on 2 cores. A machine shared with other work is
 * slower: the time is said as "about".
 */
export const FLOPS_PER_THREAD = 90e9;

/**
 * The same for self-attention, which the fused kernel computes far below the convolutions' rate: the embedded model
 * (whose work at 768-1024 px is mostly self-attention) ran 6 times slower per FLOP than SD 1.5 on the same machine.
 */
export const ATTENTION_FLOPS_PER_THREAD = 15e9;

/** The profile of a checkpoint (and its refiner's weights): builds the UNet and VAE decoder graphs once, at a small size. */
export function modelProfile(
  checkpoint: Checkpoint,
  opts: { attention: AttentionKind; refiner?: Checkpoint; factor: number },
): ModelProfile {
  const { config } = checkpoint;
  const side = 16;
  const positions = side * side;
  const unet = graphFlopsByGrowth(
    buildUNet(config.unet, new ScopedWeights(checkpoint.unet), {
      attention: opts.attention,
      batch: 1,
      height: side,
      width: side,
      timeIds: timeIdCount(config) || undefined,
    }),
  );
  const decode = graphFlopsByGrowth(
    buildVaeDecoder(config.vae, new ScopedWeights(checkpoint.vae), {
      attention: opts.attention,
      height: side * opts.factor,
      width: side * opts.factor,
    }),
  );
  const channels = config.vae.blockOutChannels;
  const r = opts.refiner;
  return {
    weights: {
      unet: fp32WeightBytes([checkpoint.unet]),
      vae: fp32WeightBytes([checkpoint.vae]),
      textEncoders: fp32WeightBytes([checkpoint.textEncoder, checkpoint.textEncoder2]),
      refiner: r ? fp32WeightBytes([r.unet, r.vae, r.textEncoder, r.textEncoder2]) : 0,
    },
    latentFactor: opts.factor,
    unetChannels: config.unet.blockOutChannels[0]!,
    // The decoder's up blocks run the channels in reverse; the one before last is upsampled to full resolution.
    decoderChannels: channels.length > 1 ? channels[1]! : channels[0]!,
    unetFlops: { linear: unet.linear / positions, quadratic: unet.quadratic / positions ** 2 },
    decodeFlops: { linear: decode.linear / positions, quadratic: decode.quadratic / positions ** 2 },
    guidanceDoublesRows: config.unet.timeCondProjDim == null,
  };
}

export interface GenerationEstimate {
  /** Peak memory of the process (bytes). */
  bytes: number;
  /** Its parts: weights held, the UNet's working memory at the largest pass, the decode's at the output size. */
  parts: { weights: number; unet: number; decode: number; runtime: number };
  /** Compute time on an otherwise idle machine (seconds). */
  seconds: number;
}

/**
 * The peak memory and the time of a generation. Memory: the runtime, every network's weights (ControlNets' and the
 * refiner's included; the text encoders' not when the pipeline releases them before the peak, see StageMemory),
 * the UNet's working memory at the size of its largest pass (the hires pass's, with the hires fix) and the VAE
 * decode's at the output size. onnxruntime's arenas keep their peak once reached, so the UNet's and the decode's
 * add up rather than take turns. Time: the model calls of both passes and the decodes, from their FLOPs.
 */
export function estimateGeneration(
  m: ModelProfile,
  p: Pick<
    ResolvedParams,
    | "width"
    | "height"
    | "batchSize"
    | "batchCount"
    | "steps"
    | "sampler"
    | "cfgScale"
    | "initImage"
    | "denoisingStrength"
    | "hires"
    | "controlnet"
  >,
  opts: { threads: number; textEncodersReleased?: boolean },
): GenerationEstimate {
  const f = m.latentFactor;
  const [outW, outH] = p.hires ? [p.hires.width, p.hires.height] : [p.width, p.height];
  const rows = p.batchSize * (m.guidanceDoublesRows && p.cfgScale > 1 ? 2 : 1);
  const positions = (w: number, h: number) => (w / f) * (h / f);
  const units = p.controlnet?.length ?? 0;
  const weights =
    m.weights.unet * (1 + CONTROLNET_WEIGHT_SHARE * units) +
    m.weights.vae +
    (opts.textEncodersReleased ? 0 : m.weights.textEncoders) +
    m.weights.refiner;
  const unet = UNET_TENSORS * rows * positions(outW, outH) * m.unetChannels * 4;
  const decode = decodeWorkingBytes(outW, outH, m.decoderChannels);
  const parts = { weights, unet, decode, runtime: RUNTIME_BASE_BYTES };

  // Seconds of one thread per FLOP of each kind, the ControlNets' calls counted as their share of the UNet's.
  const perFlop = { linear: 1 / FLOPS_PER_THREAD, quadratic: 1 / ATTENTION_FLOPS_PER_THREAD };
  const cost = (f: { linear: number; quadratic: number }, n: number) =>
    f.linear * n * perFlop.linear + f.quadratic * n * n * perFlop.quadratic;
  const call = (w: number, h: number) =>
    rows * cost(m.unetFlops, positions(w, h)) * (1 + CONTROLNET_WEIGHT_SHARE * units);
  const calls = (sampler: string) => findSampler(sampler)?.callsPerStep ?? 1;
  const firstSteps = p.initImage === undefined ? p.steps : Math.min(Math.floor(p.steps * p.denoisingStrength), p.steps);
  let batch = firstSteps * calls(p.sampler) * call(p.width, p.height);
  if (p.hires) batch += (p.hires.steps || p.steps) * calls(p.hires.sampler) * call(p.hires.width, p.hires.height);
  batch += p.batchSize * cost(m.decodeFlops, positions(outW, outH));
  return {
    bytes: weights + unet + decode + RUNTIME_BASE_BYTES,
    parts,
    seconds: (batch * p.batchCount) / Math.max(1, opts.threads),
  };
}

/**
 * The memory a generation may take on this machine: what is free now plus what this process already holds (the
 * loaded weights, counted in the estimate too), at most 90% of the machine's memory (the system and other programs
 * keep the rest).
 */
export function machineMemoryLimit(): number {
  return Math.min(0.9 * totalmem(), freemem() + process.memoryUsage().rss);
}

/**
 * The largest size of the request's aspect ratio (steps of 8 px) whose estimate is within `limit`, the hires size
 * scaled alike; undefined when not even 64 px fits (the weights alone are too much).
 */
export function largestFittingSize<P extends Parameters<typeof estimateGeneration>[1]>(
  m: ModelProfile,
  p: P,
  opts: Parameters<typeof estimateGeneration>[2],
  limit: number,
): { width: number; height: number } | undefined {
  const round8 = (x: number) => Math.max(8, Math.round(x / 8) * 8);
  for (let width = p.width - 8; width >= 64; width -= 8) {
    const k = width / p.width;
    const height = round8(p.height * k);
    const hires = p.hires && { ...p.hires, width: round8(p.hires.width * k), height: round8(p.hires.height * k) };
    if (estimateGeneration(m, { ...p, width, height, hires }, opts).bytes <= limit) return { width, height };
  }
  return undefined;
}

/** 1.2 GiB, 0.3 GiB: memory as people read it. */
export function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** 45 s, 3 min, 2.5 h. */
export function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

type EstimatedParams = Parameters<typeof estimateGeneration>[1];
type EstimateOptions = Parameters<typeof estimateGeneration>[2];

/**
 * A generation's estimate against a memory limit: `refusal` says why it does not fit (the estimate, its parts, the
 * limit and the largest size of its shape that fits), absent when it fits. The caller adds how to raise the limit.
 */
export function checkMemory(
  m: ModelProfile,
  p: EstimatedParams,
  opts: EstimateOptions,
  limit: number,
): { estimate: GenerationEstimate; refusal?: string } {
  const estimate = estimateGeneration(m, p, opts);
  if (estimate.bytes <= limit) return { estimate };
  const { weights, unet, decode, runtime } = estimate.parts;
  const [width, height] = p.hires ? [p.hires.width, p.hires.height] : [p.width, p.height];
  const fits = largestFittingSize(m, p, opts, limit);
  const advice = fits
    ? `the largest size of its shape that fits is ${fits.width}x${fits.height}` +
      (p.hires ? " (before the hires fix)" : "") +
      (p.batchSize > 1 ? `, or make fewer images per batch (batch size ${p.batchSize})` : "")
    : "not even 64 px fits beside this model's weights: use a smaller model or a machine with more memory";
  return {
    estimate,
    refusal:
      `a ${width}x${height} generation needs about ${gib(estimate.bytes)} of memory (weights ${gib(weights)}, ` +
      `UNet working memory ${gib(unet)}, VAE decode ${gib(decode)}, runtime ${gib(runtime)}), over the limit of ` +
      `${gib(limit)}: ${advice}`,
  };
}
