import { SD15, SD21, SDXL_BASE, timeIdCount, type PipelineConfig } from "../src/configs/pipeline.js";
import { buildClipText, CLIP_TEXT_IO } from "../src/models/clip-text.js";
import { buildUNet, UNET_IO } from "../src/models/unet.js";
import { buildVaeDecoder, VAE_IO } from "../src/models/vae.js";
import type { AttentionKind } from "../src/onnx/builder.js";
import { graphFlops } from "../src/onnx/flops.js";
import type { NetworkName, Networks } from "../src/pipeline/networks.js";
import type { FeedValue, Session } from "../src/runtime/session.js";
import { ScopedWeights } from "../src/weights/weight-source.js";
import type { RandomLayout } from "./random-checkpoint.js";

/**
 * What `npm run bench` measures per family: the full-size architectures (random weights), the networks a
 * generation runs, and the figures the issue gives for diffusers + PyTorch (fp32, 2 threads, jemalloc) on the machine
 * where our SD1.5 guided step took 5.94 s, with the speed-up each row must reach over them.
 */

export type FamilyName = "sd15" | "sd21" | "sdxl";

export interface Family {
  config: PipelineConfig;
  /** How its random checkpoint is written: SD1.5 as a diffusers folder (as before), the others as published single files. */
  layout: RandomLayout;
  /** Every network a text-to-image generation loads. */
  networks: NetworkName[];
}

export const FAMILIES: Readonly<Record<FamilyName, Family>> = {
  sd15: {
    config: SD15,
    layout: { layout: "diffusers", dtype: "F16" },
    networks: ["text_encoder", "unet", "vae_decoder"],
  },
  sd21: { config: SD21, layout: { layout: "single-file" }, networks: ["text_encoder", "unet", "vae_decoder"] },
  sdxl: {
    config: SDXL_BASE,
    layout: { layout: "single-file" },
    networks: ["text_encoder", "text_encoder_2", "unet", "vae_decoder"],
  },
};

/** Our SD1.5 guided 512 px step on the machine where the PyTorch figures were taken: their scale. */
export const REFERENCE_SD15_STEP = 5.94;

/** A timed network: median seconds of a run, and the share of the threads' time this process got while timing it. */
export interface Timing {
  seconds: number;
  /**
   * CPU time used over (wall time x threads): about 1 when the machine is ours (onnxruntime's threads spin while
   * they wait), lower when other processes took cores from the run, whose time is then too long.
   */
  cpuShare: number;
}

export interface RowTiming extends Timing {
  /** MatMul/Conv work of one timed run. */
  flops: number;
}

export interface RowSpec {
  id: string;
  family: FamilyName;
  what: string;
  /** The diffusers + PyTorch seconds (unscaled), when it gives one. */
  pytorch?: number;
  /** The speed-up over the scaled PyTorch figure this row must reach (1.5: 1.5x faster; 1: at par). */
  target?: number;
  /** The image size (px, square) a row of the denoise or decode stage runs at; none for the text encoders. */
  px?: number;
  measure(nets: Networks, t: Timer, attention: AttentionKind): Promise<RowTiming>;
}

/** Runs a session once to warm it up, then times it (the runner decides how many runs, see families.ts). */
export type Timer = (session: Session, feeds: Record<string, FeedValue>) => Promise<Timing>;

export const ROWS: readonly RowSpec[] = [
  unetRow("unet512", "sd15", 512, 12.19, undefined),
  unetRow("unet256", "sd15", 256),
  vaeRow("vae512", "sd15", 512),
  textRow("text77", "sd15"),
  unetRow("sd21-unet768", "sd21", 768, 30.6, 1.5),
  textRow("sdxl-text77", "sdxl", 4.55, 1.5),
  unetRow("sdxl-unet512", "sdxl", 512, 24.9, 1.5),
  unetRow("sdxl-unet768", "sdxl", 768, 53.4, 1.5),
  unetRow("sdxl-unet1024", "sdxl", 1024, 94.0, 1.5),
  vaeRow("sdxl-vae1024", "sdxl", 1024, 33.2, 1),
];

/** The PyTorch peak RSS for SDXL at 1024 px, and the ceiling ours must stay under. */
export const SDXL_PEAK_RSS = { pytorchGb: 13.2, limitGb: 16 };

/** Seeded normal values (Box-Muller on an LCG): inputs in the range the networks see. */
export function randn(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i += 2) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u1 = (s + 1) / 4294967297;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u2 = s / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/**
 * A guided step's UNet inputs at `px`: [uncond, cond] (batch 2) of seeded noise, timestep 500, and for SDXL its pooled
 * embeds and the time ids the pipeline passes at that size (original size, crop (0, 0), target size).
 */
export function guidedUnetFeeds(config: PipelineConfig, px: number): Record<string, FeedValue> {
  const u = config.unet;
  const size = px / 8;
  const feeds: Record<string, FeedValue> = {
    [UNET_IO.sample]: { data: randn(2 * u.inChannels * size * size, 1), dims: [2, u.inChannels, size, size] },
    [UNET_IO.timestep]: { data: Float32Array.of(500), dims: [1] },
    [UNET_IO.encoderHiddenStates]: { data: randn(2 * 77 * u.crossAttentionDim, 5), dims: [2, 77, u.crossAttentionDim] },
  };
  const ids = timeIdCount(config);
  if (ids > 0) {
    const pooled = (config.textEncoder2 ?? config.textEncoder).projectionDim!;
    feeds[UNET_IO.textEmbeds] = { data: randn(2 * pooled, 6), dims: [2, pooled] };
    feeds[UNET_IO.timeIds] = { data: Float32Array.from([px, px, 0, 0, px, px, px, px, 0, 0, px, px]), dims: [2, ids] };
  }
  return feeds;
}

/** One guided step: the UNet on [uncond, cond] (batch 2), with SDXL's pooled embeds and time ids. */
function unetRow(id: string, family: FamilyName, px: number, pytorch?: number, target?: number): RowSpec {
  return {
    id,
    family,
    pytorch,
    target,
    px,
    what: `${family} UNet ${px}px, batch 2 (one guided step)`,
    async measure(nets, time, attention) {
      const { config } = nets.checkpoint;
      const u = config.unet;
      const size = px / 8;
      const ids = timeIdCount(config);
      const feeds = guidedUnetFeeds(config, px);
      const flops = graphFlops(
        buildUNet(u, new ScopedWeights(nets.checkpoint.unet), {
          attention,
          batch: 2,
          height: size,
          width: size,
          timeIds: ids || undefined,
        }),
      );
      return { ...(await time(await nets.get("unet"), feeds)), flops };
    },
  };
}

function vaeRow(id: string, family: FamilyName, px: number, pytorch?: number, target?: number): RowSpec {
  return {
    id,
    family,
    pytorch,
    target,
    px,
    what: `${family} VAE decode ${px}px`,
    async measure(nets, time, attention) {
      const { vae } = nets.checkpoint.config;
      const size = px / 8;
      const flops = graphFlops(
        buildVaeDecoder(vae, new ScopedWeights(nets.checkpoint.vae), { attention, height: px, width: px }),
      );
      const feeds = {
        [VAE_IO.latent]: {
          data: randn(vae.latentChannels * size * size, 2),
          dims: [1, vae.latentChannels, size, size],
        },
      };
      return { ...(await time(await nets.get("vae_decoder"), feeds)), flops };
    },
  };
}

/** Every text encoder of the family on 77 tokens, batch 2 (prompt and negative prompt), one after the other. */
function textRow(id: string, family: FamilyName, pytorch?: number, target?: number): RowSpec {
  return {
    id,
    family,
    pytorch,
    target,
    what: `${family} text encoder${family === "sdxl" ? "s (CLIP-L + OpenCLIP bigG)" : ""}, 77 tokens, batch 2`,
    async measure(nets, time) {
      const { config, textEncoder, textEncoder2 } = nets.checkpoint;
      const encoders = [
        { name: "text_encoder" as const, config: config.textEncoder, weights: textEncoder },
        ...(config.textEncoder2 && textEncoder2
          ? [{ name: "text_encoder_2" as const, config: config.textEncoder2, weights: textEncoder2 }]
          : []),
      ];
      let seconds = 0,
        cpu = 0,
        flops = 0;
      for (const e of encoders) {
        // Built at batch 1, run at batch 2.
        flops += 2 * graphFlops(buildClipText(e.config, new ScopedWeights(e.weights)));
        const ids = BigInt64Array.from({ length: 2 * 77 }, (_, i) => BigInt((i * 7919) % e.config.vocabSize));
        const session = await nets.get(e.name);
        const feeds: Parameters<typeof time>[1] = { [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [2, 77] } };
        // Graphs built for textual inversion take the embeddings' rows with each run: one row of zeros when none.
        if (session.inputNames.includes(CLIP_TEXT_IO.extraTokens))
          feeds[CLIP_TEXT_IO.extraTokens] = {
            data: new Float32Array(e.config.hiddenSize),
            dims: [1, e.config.hiddenSize],
          };
        const t = await time(session, feeds);
        seconds += t.seconds;
        cpu += t.seconds * t.cpuShare;
      }
      return { seconds, cpuShare: cpu / seconds, flops };
    },
  };
}
