import type { RgbImage } from "../image/codec.js";
import { tensorToImages, type Nchw } from "../image/tensor.js";
import { openTaesd } from "../models/open-taesd.js";
import { buildTaesdDecoder, TAESD_IO } from "../models/taesd.js";
import { CompileCache, defaultCacheDir } from "../runtime/compile-cache.js";
import type { TaesdCheckpoint } from "../weights/taesd-checkpoint.js";
import { ScopedWeights } from "../weights/weight-source.js";
import { InputError } from "../errors.js";
import type { LatentSpace } from "./latent-space.js";
import { CachedSessions, modelSha256, type NetworkOptions } from "./networks.js";

/**
 * A loaded TAESD / TAESDXL decoder (weights/taesd-checkpoint.ts): a 1 M-parameter decoder of the UNet's latents that
 * costs milliseconds, for the image as it forms (previews) or as a fast final decoder. Its session goes through the
 * compile cache, keyed by its files' hash.
 */
export class TaesdModel {
  private constructor(
    readonly checkpoint: TaesdCheckpoint,
    private readonly sessions: CachedSessions<"taesd_decoder">,
  ) {}

  static async open(path: string, space: LatentSpace, opts: NetworkOptions = {}): Promise<TaesdModel> {
    const checkpoint = openTaesd(path);
    try {
      if (checkpoint.config.latentChannels !== space.channels) {
        throw new InputError(
          `the TAESD ${path} decodes ${checkpoint.config.latentChannels}-channel latents but the model's have ${space.channels}: use the TAESD of the model's family (taesd for SD1/SD2, taesdxl for SDXL)`,
        );
      }
      const cacheDir = opts.cacheDir ?? defaultCacheDir();
      // One file hashes as itself; several (a folder) as the list of their hashes.
      const sha256 = await modelSha256(
        {
          layout: checkpoint.files.length === 1 ? "single-file" : "diffusers",
          path: checkpoint.files.length === 1 ? checkpoint.files[0]! : checkpoint.path,
          files: checkpoint.files,
        },
        cacheDir,
        opts.onStatus,
      );
      const sessions = new CachedSessions<"taesd_decoder">(
        sha256,
        new CompileCache(cacheDir, { storage: opts.cacheWeights }),
        opts,
        () => buildTaesdDecoder(checkpoint.config, new ScopedWeights(checkpoint.weights)),
      );
      return new TaesdModel(checkpoint, sessions);
    } catch (e) {
      checkpoint.close();
      throw e;
    }
  }

  /** Image `index` of latents [B, C, h, w] (the UNet's latents: TAESD's scaling factor is 1) as RGB at 8x their size. */
  async decode(latents: Float32Array, shape: Nchw, index = 0): Promise<RgbImage> {
    const [, c, h, w] = shape;
    const per = c * h * w;
    const session = await this.sessions.get("taesd_decoder");
    const z = latents.slice(index * per, (index + 1) * per).map((v) => v / this.checkpoint.config.scalingFactor);
    const out = await session.run({ [TAESD_IO.latents]: { data: z, dims: [1, c, h, w] } });
    return tensorToImages(out[TAESD_IO.decoded]!.data, out[TAESD_IO.decoded]!.dims as unknown as Nchw)[0]!;
  }

  async close(): Promise<void> {
    await this.sessions.release();
    this.checkpoint.close();
  }
}
