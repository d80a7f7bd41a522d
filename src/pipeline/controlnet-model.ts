import type { UNetConfig } from "../configs/unet.js";
import { InputError } from "../errors.js";
import { buildControlNet, buildControlNetHint, CONTROLNET_IO } from "../models/controlnet.js";
import { openControlNet } from "../models/open-controlnet.js";
import { residualShapes } from "../models/unet-blocks.js";
import { CompileCache, defaultCacheDir } from "../runtime/compile-cache.js";
import type { Session } from "../runtime/session.js";
import { controlNetTitle, type ControlNetCheckpoint } from "../weights/controlnet-checkpoint.js";
import { ScopedWeights } from "../weights/weight-source.js";
import { CachedSessions, modelSha256, type NetworkOptions } from "./networks.js";

/**
 * A loaded ControlNet: its checkpoint (opened and checked, models/open-controlnet.ts) and its session, built through
 * the compile cache like a checkpoint's networks (keyed by the ControlNet's own hash).
 */
export class ControlNetModel {
  private constructor(
    readonly checkpoint: ControlNetCheckpoint,
    private readonly sessions: CachedSessions<"controlnet" | "controlnet_hint">,
    /** As A1111's ControlNet extension lists it: "control_v11p_sd15_scribble [d4ba51ff]". */
    readonly title: string,
  ) {}

  static async open(path: string, opts: NetworkOptions & { config?: string } = {}): Promise<ControlNetModel> {
    const checkpoint = openControlNet(path, { configDir: opts.config });
    try {
      const cacheDir = opts.cacheDir ?? defaultCacheDir();
      const sha256 = await modelSha256(checkpoint, cacheDir, opts.onStatus);
      const w = new ScopedWeights(checkpoint.weights);
      const sessions = new CachedSessions<"controlnet" | "controlnet_hint">(
        sha256,
        new CompileCache(cacheDir, { storage: opts.cacheWeights }),
        opts,
        (name, attention) =>
          name === "controlnet"
            ? buildControlNet(checkpoint.config, w, { attention })
            : buildControlNetHint(checkpoint.config, w),
      );
      return new ControlNetModel(checkpoint, sessions, controlNetTitle(path, checkpoint.files[0]!));
    } catch (e) {
      checkpoint.close();
      throw e;
    }
  }

  /** The part that runs at every step (models/controlnet.ts buildControlNet). */
  session(): Promise<Session> {
    return this.sessions.get("controlnet");
  }

  /** The conditioning embedding of one control map [1, 3, H, W] in [0, 1]: computed once per generation. */
  async hint(
    cond: Float32Array,
    dims: readonly [number, number, number, number],
  ): Promise<{ data: Float32Array; dims: readonly number[] }> {
    const out = await (await this.sessions.get("controlnet_hint")).run({ [CONTROLNET_IO.cond]: { data: cond, dims } });
    return out[CONTROLNET_IO.hint]!;
  }

  /**
   * Whether this ControlNet can guide a UNet: the same text width and the same channels at every skip connection
   * and the mid block (an SD1 ControlNet on SD1 models, an SDXL one on SDXL); an InputError naming both otherwise.
   */
  checkFits(unet: UNetConfig, modelPath: string): void {
    const c = this.checkpoint.config;
    const ours = residualShapes(c, 8, 8);
    const theirs = residualShapes(unet, 8, 8);
    const same =
      ours.down.length === theirs.down.length &&
      ours.down.every((s, i) => s[0] === theirs.down[i]![0]) &&
      ours.mid[0] === theirs.mid[0];
    if (same && c.crossAttentionDim === unet.crossAttentionDim && c.additionEmbedType === unet.additionEmbedType)
      return;
    throw new InputError(
      `the ControlNet ${this.checkpoint.path} (channels [${c.blockOutChannels}], ${c.crossAttentionDim}-wide text) does not fit the model ${modelPath} ` +
        `(channels [${unet.blockOutChannels}], ${unet.crossAttentionDim}-wide text): use a ControlNet made for the model's family (SD1.5 ControlNets for SD1.5 models, SDXL ones for SDXL)`,
    );
  }

  async close(): Promise<void> {
    await this.sessions.release();
    this.checkpoint.close();
  }
}
