import { adapterFeatureShapes } from "../configs/t2i-adapter.js";
import type { UNetConfig } from "../configs/unet.js";
import { InputError } from "../errors.js";
import type { RgbImage } from "../image/codec.js";
import { imageToUnitTensor } from "../image/tensor.js";
import { openT2IAdapter } from "../models/open-t2i-adapter.js";
import { adapterFeatureName, buildT2IAdapter, T2I_ADAPTER_IO } from "../models/t2i-adapter.js";
import { intrablockShapes } from "../models/unet-blocks.js";
import { CompileCache, defaultCacheDir } from "../runtime/compile-cache.js";
import { controlNetTitle } from "../weights/controlnet-checkpoint.js";
import type { T2IAdapterCheckpoint } from "../weights/t2i-adapter-checkpoint.js";
import { ScopedWeights } from "../weights/weight-source.js";
import { CachedSessions, modelSha256, type NetworkOptions } from "./networks.js";

/**
 * A loaded T2I-Adapter: its checkpoint (opened and checked, models/open-t2i-adapter.ts) and its session, built
 * through the compile cache like a ControlNet's (keyed by the adapter's own hash). It runs once per generation: its
 * feature maps depend on the control map alone, and the UNet adds them at every step.
 */
export class T2IAdapterModel {
  private constructor(
    readonly checkpoint: T2IAdapterCheckpoint,
    private readonly sessions: CachedSessions<"t2i_adapter">,
    /** As A1111's ControlNet extension lists it (adapters share its models folder): "t2iadapter_sketch [e0f8ec7d]". */
    readonly title: string,
  ) {}

  static async open(path: string, opts: NetworkOptions = {}): Promise<T2IAdapterModel> {
    const checkpoint = openT2IAdapter(path);
    try {
      const cacheDir = opts.cacheDir ?? defaultCacheDir();
      const sha256 = await modelSha256(checkpoint, cacheDir, opts.onStatus);
      const w = new ScopedWeights(checkpoint.weights);
      const sessions = new CachedSessions<"t2i_adapter">(
        sha256,
        new CompileCache(cacheDir, { storage: opts.cacheWeights }),
        opts,
        () => buildT2IAdapter(checkpoint.config, w),
      );
      return new T2IAdapterModel(checkpoint, sessions, controlNetTitle(path, checkpoint.files[0]!));
    } catch (e) {
      checkpoint.close();
      throw e;
    }
  }

  /**
   * The feature maps [1, C, h, w] of one control map at the generation size, in order. A one-channel adapter (the
   * sketch, canny and lineart ones) reads the map's first channel, as A1111's extension gives it (the maps of
   * those preprocessors are grey, so every channel is the same).
   */
  async features(map: RgbImage): Promise<{ data: Float32Array; dims: readonly number[] }[]> {
    const { data, shape } = imageToUnitTensor(map);
    const channels = this.checkpoint.config.inChannels;
    const plane = map.width * map.height;
    const cond = { data: data.subarray(0, channels * plane), dims: [1, channels, shape[2], shape[3]] };
    const out = await (await this.sessions.get("t2i_adapter")).run({ [T2I_ADAPTER_IO.cond]: cond });
    return this.checkpoint.config.channels.map((_, i) => out[adapterFeatureName(i)]!);
  }

  /**
   * Whether this adapter can guide a UNet at width x height: the size a multiple of its unshuffle factor, and each
   * feature map of the shape of the UNet's residual it feeds (unet-blocks.ts intrablockShapes: an SD1.x adapter's on
   * SD1.x models, an SDXL one's on SDXL); an InputError naming both otherwise.
   */
  checkFits(unet: UNetConfig, modelPath: string, width: number, height: number): void {
    const c = this.checkpoint.config;
    const r = c.downscaleFactor;
    if (width % r !== 0 || height % r !== 0)
      throw new InputError(
        `the T2I-Adapter ${this.checkpoint.path} unshuffles the control map by ${r}: use a width and height that are multiples of ${r} (not ${width}x${height})`,
      );
    const ours = adapterFeatureShapes(c, height, width);
    const theirs = intrablockShapes(unet, height / 8, width / 8);
    if (ours.length <= theirs.length && ours.every((s, i) => s.every((v, k) => v === theirs[i]![k]))) return;
    const show = (shapes: number[][]) => shapes.map((s) => `[${s}]`).join(" ");
    throw new InputError(
      `the T2I-Adapter ${this.checkpoint.path} does not fit the model ${modelPath}: at ${width}x${height} its features are ${show(ours)}, ` +
        `the UNet takes ${show(theirs)} (channels, height, width): use an adapter made for the model's family (SD1.5 adapters for SD1.5 models, SDXL ones for SDXL)`,
    );
  }

  async close(): Promise<void> {
    await this.sessions.release();
    this.checkpoint.close();
  }
}
