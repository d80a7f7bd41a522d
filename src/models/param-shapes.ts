import type { ControlNetConfig } from "../configs/controlnet.js";
import type { T2IAdapterConfig } from "../configs/t2i-adapter.js";
import type { TaesdConfig } from "../configs/taesd.js";
import type { TextEncoderConfig } from "../configs/text-encoder.js";
import type { UNetConfig } from "../configs/unet.js";
import type { VaeConfig } from "../configs/vae.js";
import type { VisionConfig } from "../configs/vision.js";
import { ShapeRecorder } from "../weights/shape-recorder.js";
import { ScopedWeights } from "../weights/weight-source.js";
import { buildClipText } from "./clip-text.js";
import { buildClipVision } from "./clip-vision.js";
import { buildControlNet, buildControlNetHint } from "./controlnet.js";
import { buildT2IAdapter } from "./t2i-adapter.js";
import { buildTaesdDecoder, buildTaesdEncoder } from "./taesd.js";
import { buildUNet } from "./unet.js";
import { buildVaeDecoder, buildVaeEncoder } from "./vae.js";

/**
 * The parameters each architecture has, as diffusers names -> shapes, found by running its builder against a
 * shape recorder: the builder is the only description of an architecture. Used to check a checkpoint against
 * its config, to build full-size models with random weights (benchmarks), and to say which keys a file lacks.
 */
export type ParamShapes = Map<string, readonly number[]>;

function recordShapes(build: (w: ScopedWeights) => void): ParamShapes {
  const recorder = new ShapeRecorder();
  build(new ScopedWeights(recorder));
  return recorder.shapes;
}

export function unetParamShapes(c: UNetConfig): ParamShapes {
  return recordShapes((w) => buildUNet(c, w));
}

export function controlNetParamShapes(c: ControlNetConfig): ParamShapes {
  return recordShapes((w) => {
    buildControlNetHint(c, w);
    buildControlNet(c, w);
  });
}

export function t2iAdapterParamShapes(c: T2IAdapterConfig): ParamShapes {
  return recordShapes((w) => buildT2IAdapter(c, w));
}

/** TAESD's decoder, and its encoder when asked for. */
export function taesdParamShapes(c: TaesdConfig, opts: { encoder?: boolean } = {}): ParamShapes {
  return recordShapes((w) => {
    buildTaesdDecoder(c, w);
    if (opts.encoder) buildTaesdEncoder(c, w);
  });
}

/** Encoder and decoder (the VAE's weights are one set). */
export function vaeParamShapes(c: VaeConfig): ParamShapes {
  return recordShapes((w) => {
    buildVaeEncoder(c, w);
    buildVaeDecoder(c, w);
  });
}

export function clipTextParamShapes(c: TextEncoderConfig): ParamShapes {
  return recordShapes((w) => buildClipText(c, w));
}

/** A CLIP vision tower's parameters under `prefix`, plus `visual_projection.weight` when asked. */
export function clipVisionParamShapes(
  c: VisionConfig,
  opts: { prefix?: string; projection?: boolean } = {},
): ParamShapes {
  return recordShapes((w) =>
    buildClipVision(c, opts.prefix ? w.sub(opts.prefix) : w, opts.projection ? w.sub("visual_projection") : undefined),
  );
}

export function paramCount(shapes: ParamShapes): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}
