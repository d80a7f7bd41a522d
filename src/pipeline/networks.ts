import { statSync } from "node:fs";
import { join } from "node:path";
import { buildClipText } from "../models/clip-text.js";
import { buildUNet } from "../models/unet.js";
import { buildVaeDecoder, buildVaeEncoder } from "../models/vae.js";
import type { AttentionKind } from "../onnx/builder.js";
import type { Graph } from "../onnx/graph.js";
import { CompileCache, defaultCacheDir } from "../runtime/compile-cache.js";
import { HashMemo } from "../runtime/hash-memo.js";
import { openCachedSession } from "../runtime/optimized-copy.js";
import type { Session, SessionOptions } from "../runtime/session.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { checkpointSha256 } from "../weights/checkpoint-hash.js";
import { sha256File } from "../weights/hash.js";
import { ScopedWeights } from "../weights/weight-source.js";

/**
 * onnxruntime's fused MultiHeadAttention: measured by `npm run bench` on 2 cores, one guided 512 px UNet step
 * takes 8.31 s against 8.64 s with MatMul-Softmax-MatMul, and peak memory halves (3.9 GB against 7.9 GB),
 * because the [heads, 4096, 4096] score matrices are never materialised whole.
 */
export const DEFAULT_ATTENTION: AttentionKind = "ms-mha";

/** Bumped whenever a builder changes the graphs it emits, so stale cache entries are not reused. */
export const GRAPH_VERSION = 2;

export interface NetworkOptions extends SessionOptions {
  /** Where built graphs are kept (default: $DIFFUSE_CACHE or ~/.cache/diffuse/compiled). */
  cacheDir?: string;
  attention?: AttentionKind;
  /** Progress messages ("building unet graph (first use of this checkpoint)"). */
  onStatus?: (message: string) => void;
}

/** "text_encoder" is the checkpoint's first (or only) text encoder, "text_encoder_2" SDXL base's second. */
export type NetworkName = "text_encoder" | "text_encoder_2" | "unet" | "vae_decoder" | "vae_encoder";

/**
 * The ONNX sessions of one checkpoint, built through the compile cache: the first load of a checkpoint builds
 * and writes each graph with its converted weights; later loads only open the cached files. The VAE encoder is
 * loaded on first use (text-to-image never needs it).
 */
export class Networks {
  private readonly sessions = new Map<NetworkName, Promise<Session>>();

  private constructor(
    readonly checkpoint: Checkpoint,
    readonly sha256: string,
    private readonly cache: CompileCache,
    private readonly opts: NetworkOptions,
  ) {}

  static async open(checkpoint: Checkpoint, opts: NetworkOptions = {}): Promise<Networks> {
    const cacheDir = opts.cacheDir ?? defaultCacheDir();
    const memo = new HashMemo(join(cacheDir, "hashes.json"));
    const sha256 = await checkpointSha256(checkpoint, (p) => memo.hash(p, (abs) => {
      // Only worth a word when it takes a while (a few seconds per GB).
      if (statSync(abs).size > 256 * 2 ** 20) opts.onStatus?.(`hashing ${abs} (once per file)`);
      return sha256File(abs);
    }));
    return new Networks(checkpoint, sha256, new CompileCache(cacheDir), opts);
  }

  /** A session, created on first request. */
  get(name: NetworkName): Promise<Session> {
    let s = this.sessions.get(name);
    if (!s) {
      s = this.load(name);
      this.sessions.set(name, s);
      s.catch(() => this.sessions.delete(name));
    }
    return s;
  }

  private async load(name: NetworkName): Promise<Session> {
    const attention = this.opts.attention ?? DEFAULT_ATTENTION;
    const key = `${this.sha256.slice(0, 24)}-${name}-${attention}-g${GRAPH_VERSION}`;
    const entry = this.cache.getOrBuild(key, () => this.build(name, attention), (e) => {
      if (!e.hit) this.opts.onStatus?.(`building the ${name} graph (${e.reason}); later runs reuse it`);
    });
    try {
      return await openCachedSession(entry.path, this.opts);
    } catch (e) {
      // An entry that passed validation but that the runtime refuses is dropped, so the next load rebuilds it.
      this.cache.evict(key, entry.id);
      throw e;
    }
  }

  private build(name: NetworkName, attention: AttentionKind): Graph {
    const { config, unet, vae, textEncoder, textEncoder2 } = this.checkpoint;
    switch (name) {
      case "text_encoder": return buildClipText(config.textEncoder, new ScopedWeights(textEncoder));
      case "text_encoder_2":
        if (!config.textEncoder2 || !textEncoder2) throw new Error(`${this.checkpoint.path} has no second text encoder`);
        return buildClipText(config.textEncoder2, new ScopedWeights(textEncoder2));
      case "unet": return buildUNet(config.unet, new ScopedWeights(unet), { attention });
      case "vae_decoder": return buildVaeDecoder(config.vae, new ScopedWeights(vae), { attention });
      case "vae_encoder": return buildVaeEncoder(config.vae, new ScopedWeights(vae), { attention });
    }
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s.catch(() => undefined))?.release();
  }
}
