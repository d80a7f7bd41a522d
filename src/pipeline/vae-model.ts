import type { PipelineConfig } from "../configs/pipeline.js";
import { InputError } from "../errors.js";
import { vaeParamShapes } from "../models/param-shapes.js";
import { buildVaeDecoder, buildVaeEncoder } from "../models/vae.js";
import { CompileCache, defaultCacheDir } from "../runtime/compile-cache.js";
import type { Session } from "../runtime/session.js";
import { checkShapes } from "../weights/detect.js";
import { shortHash } from "../weights/hash.js";
import { openVaeFile, type VaeFile } from "../weights/vae-file.js";
import { ScopedWeights } from "../weights/weight-source.js";
import { CachedSessions, modelSha256, NETWORK_SESSION, type NetworkOptions } from "./networks.js";

export type VaeNetwork = "vae_decoder" | "vae_encoder";

/** What the VAE codec runs: the checkpoint's own VAE networks, or those of a VAE loaded instead (VaeModel). */
export interface VaeSessions {
  get(name: VaeNetwork): Promise<Session>;
}

/**
 * A VAE used instead of the checkpoint's own (A1111's sd_vae, `--vae PATH`): built with the model's VAE
 * architecture and scaling factor (a single file has no config; both VAEs of a family share the architecture), its
 * graphs cached under its own files' hash. One of another latent space is refused before anything is built.
 */
export class VaeModel implements VaeSessions {
  /** A1111's infotext fields: "VAE" (the file's name) and "VAE hash" (the first 10 hex digits of its sha256). */
  readonly name: string;
  readonly hash: string;

  private constructor(
    readonly file: VaeFile,
    sha256: string,
    private readonly sessions: CachedSessions<VaeNetwork>,
  ) {
    this.name = file.name;
    this.hash = shortHash(sha256);
  }

  static async open(path: string, model: PipelineConfig, opts: NetworkOptions = {}): Promise<VaeModel> {
    const file = openVaeFile(path);
    try {
      const own = model.vae;
      if (file.latentChannels !== own.latentChannels)
        throw new InputError(
          `the VAE ${path} works with ${file.latentChannels}-channel latents but the model's have ${own.latentChannels}: ` +
            `use a VAE of the model's family (vae-ft-mse-840000 for SD1, sdxl-vae-fp16-fix for SDXL)`,
        );
      if (file.config && Math.abs(file.config.scalingFactor - own.scalingFactor) > 1e-6)
        throw new InputError(
          `the VAE ${path} has scaling factor ${file.config.scalingFactor} but the model's latents are scaled by ${own.scalingFactor}: ` +
            `it belongs to another family (0.18215: SD1/SD2, 0.13025: SDXL); use a VAE of the model's family`,
        );
      checkShapes(
        file.weights,
        vaeParamShapes(own),
        "VAE",
        `the VAE ${path} does not have the model's VAE architecture; use a VAE of the model's family`,
      );
      const cacheDir = opts.cacheDir ?? defaultCacheDir();
      const single = file.files.length === 1;
      const sha256 = await modelSha256(
        { layout: single ? "single-file" : "diffusers", path: single ? file.files[0]! : file.path, files: file.files },
        cacheDir,
        opts.onStatus,
      );
      const weights = () => new ScopedWeights(file.weights);
      const sessions = new CachedSessions<VaeNetwork>(
        sha256,
        new CompileCache(cacheDir, { storage: opts.cacheWeights }),
        opts,
        (name, attention) =>
          name === "vae_decoder"
            ? buildVaeDecoder(own, weights(), { attention })
            : buildVaeEncoder(own, weights(), { attention }),
        (name) => NETWORK_SESSION[name] ?? {},
      );
      return new VaeModel(file, sha256, sessions);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  get(name: VaeNetwork): Promise<Session> {
    return this.sessions.get(name);
  }

  /** The infotext fields A1111 writes for a VAE chosen instead of the checkpoint's. */
  get infotext(): Record<string, string> {
    return { "VAE hash": this.hash, VAE: this.name };
  }

  async close(): Promise<void> {
    await this.sessions.release();
    this.file.close();
  }
}
