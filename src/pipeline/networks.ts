import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClipText } from "../models/clip-text.js";
import {
  calibratedTensors,
  int8Graph,
  weightOnlyInt8Graph,
  type Int8Network,
  type Precision,
  type WeightOnlyInt8Network,
} from "../models/precision.js";
import { buildUNet } from "../models/unet.js";
import { buildVaeDecoder, buildVaeEncoder } from "../models/vae.js";
import type { AttentionKind } from "../onnx/builder.js";
import { Graph } from "../onnx/graph.js";
import { InputError, InternalError } from "../errors.js";
import { ActivationStatistics, observeRanges, type ActivationRanges, type Range } from "../onnx/activation-ranges.js";
import { graphStructure } from "../onnx/serialize.js";
import { codeDigest } from "../runtime/code-digest.js";
import { CompileCache, defaultCacheDir, FORMAT_VERSION } from "../runtime/compile-cache.js";
import { GraphKeyMemo } from "../runtime/graph-key-memo.js";
import { HashMemo } from "../runtime/hash-memo.js";
import { nchwcLayout } from "../runtime/nchwc-layout.js";
import { nchwcBlockSize } from "../runtime/nchwc-probe.js";
import type { LiveWeights } from "../runtime/live-weights.js";
import type { Session, SessionOptions } from "../runtime/session.js";
import type { WeightPatches } from "../runtime/weight-patch.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { checkpointSha256 } from "../weights/checkpoint-hash.js";
import { sha256File } from "../weights/hash.js";
import { ScopedWeights } from "../weights/weight-source.js";
import {
  fp32GraphDigest,
  shippedCalibrationPath,
  shippedRanges,
  type ShippedNetwork,
} from "./int8-shipped-calibration.js";

/**
 * onnxruntime's fused MultiHeadAttention: measured by `npm run bench` on 2 cores, one guided 512 px UNet step
 * takes 8.31 s against 8.64 s with MatMul-Softmax-MatMul, and peak memory halves (3.9 GB against 7.9 GB),
 * because the [heads, 4096, 4096] score matrices are never materialised whole.
 */
export const DEFAULT_ATTENTION: AttentionKind = "ms-mha";

/**
 * The modules whose code decides what a cached network holds: the builders, the checkpoint reading that feeds them
 * weights, and the layout and serialization of the graph. Their sources, with everything they import, go into the
 * cache key (code-digest.ts), so a change to any of them rebuilds the entries and a change elsewhere does not.
 */
export const GRAPH_CODE = [
  new URL("../models/clip-text.js", import.meta.url),
  new URL("../models/unet.js", import.meta.url),
  new URL("../models/controlnet.js", import.meta.url),
  new URL("../models/t2i-adapter.js", import.meta.url),
  new URL("../models/vae.js", import.meta.url),
  new URL("../models/open-checkpoint.js", import.meta.url),
  new URL("../runtime/nchwc-layout.js", import.meta.url),
  new URL("../onnx/serialize.js", import.meta.url),
  new URL("../runtime/compact-weights.js", import.meta.url),
];

/**
 * What else decides an int8 network's entry: which layers are quantized and how (models/precision.ts and the onnx/
 * passes it imports). Only int8 keys hold it, so that a change there leaves the fp32 entries in place.
 */
export const INT8_CODE = [new URL("../models/precision.js", import.meta.url)];

export interface NetworkOptions extends SessionOptions {
  /** Where built graphs are kept (default: $DIFFUSE_CACHE or ~/.cache/diffuse/compiled). */
  cacheDir?: string;
  attention?: AttentionKind;
  /**
   * How built graphs keep their weights on disk: "compact" (default) in the checkpoint's own precision where that
   * is exact (fp16 for most checkpoints: about the checkpoint's size), rebuilt as fp32 at each load; "fp32" as the
   * runtime reads them, twice the disk of an fp16 checkpoint for a faster load (no rebuild). Both compute the same.
   */
  cacheWeights?: "compact" | "fp32";
  /**
   * "int8": the UNet's and the VAE decoder's heavy layers in int8 (models/precision.ts says which), faster on CPUs
   * with VNNI for a small loss of accuracy, and the text encoders' weights stored as int8 (computed in fp32);
   * "fp32" (default): everything in fp32. Each precision has its own cache entries.
   */
  precision?: Precision;
  /**
   * How int8 calibration runs a network: given the fp32 network with observers of the tensors whose ranges its int8
   * form needs, run it on representative inputs (pipeline/int8-calibration.ts: a few prompts through the denoising
   * loop). Called on the first int8 load of a model, unless the model ships a calibration valid for it
   * (int8-shipped-calibration.ts); the ranges are then kept in the cache folder.
   */
  calibrate?: (network: Int8Network, session: Session) => Promise<void>;
  /** Progress messages ("building unet graph (first use of this checkpoint)"). */
  onStatus?: (message: string) => void;
  /** How long each step of opening took: hashing the checkpoint, deriving a network's key, building its entry, loading it. */
  onTiming?: (t: { phase: "hash" | "calibrate" | "key" | "build" | "load"; network?: string; seconds: number }) => void;
}

/**
 * "text_encoder" is the checkpoint's first (or only) text encoder, "text_encoder_2" SDXL base's second;
 * "unet_control" the UNet that also takes ControlNet residuals, "unet_adapter" T2I-Adapter residuals,
 * "unet_control_adapter" both (graphs of their own, so the plain "unet" pays nothing).
 */
export type NetworkName = "text_encoder" | "text_encoder_2" | UNetVariant | "vae_decoder" | "vae_encoder";

/** The UNet's graphs: the plain one and those that take control residuals (UNET_VARIANTS). */
export type UNetVariant = "unet" | "unet_control" | "unet_adapter" | "unet_control_adapter";

/** Each UNet variant by the residuals it takes. */
export const UNET_VARIANTS: Readonly<Record<UNetVariant, { controlResiduals: boolean; adapterResiduals: boolean }>> = {
  unet: { controlResiduals: false, adapterResiduals: false },
  unet_control: { controlResiduals: true, adapterResiduals: false },
  unet_adapter: { controlResiduals: false, adapterResiduals: true },
  unet_control_adapter: { controlResiduals: true, adapterResiduals: true },
};

/**
 * Session options per network. The VAE runs once per image on the largest tensors of a generation, where
 * onnxruntime's memory pattern costs most and saves nothing measurable: decoding at 1024 px (the SDXL VAE, 2 cores)
 * its arena grew from 4.3 GB to 7.5 GB at the second decode, and without the pattern stays at 4.3 GB, for no more
 * CPU time that we could measure (65-84 s a decode against 80-83 s, on a machine shared with other work). The UNet,
 * run at every step, keeps it. The networks a LoRA changes keep every weight in the file onnxruntime maps, so that
 * a LoRA switch rewrites them there (live-weights.ts) rather than reopening the network.
 */
export const NETWORK_SESSION: Readonly<Partial<Record<NetworkName, Partial<SessionOptions>>>> = {
  vae_decoder: { memPattern: false },
  vae_encoder: { memPattern: false },
  unet: { weightsInPlace: true },
  unet_control: { weightsInPlace: true },
  unet_adapter: { weightsInPlace: true },
  unet_control_adapter: { weightsInPlace: true },
  text_encoder: { weightsInPlace: true },
  text_encoder_2: { weightsInPlace: true },
};

/**
 * What shapes a cached network, digested: the graph as built (structure, shapes, constants and the names of the
 * weights: whatever the builders and their options made of it), the digest of the code that built it and converts
 * its weights (GRAPH_CODE), the runtime layout its weights were permuted for, and the entry format. The
 * checkpoint's own hash is the rest of the key.
 */
export function graphDigest(graph: Graph, blockSize: number, code: string, precision: Precision = "fp32"): string {
  const head = `format ${FORMAT_VERSION}\0nchwc ${blockSize}\0code ${code}\0precision ${precision}\0`;
  return createHash("sha256").update(head).update(graphStructure(graph)).digest("hex").slice(0, 20);
}

/**
 * A change to a network's weights made as it is loaded (LoRAs, see lora-set.ts): `id` names the change (two
 * changes with the same id are the same), `patches` says what to add to which tensors of the built graph.
 */
export interface WeightChange {
  readonly id: string;
  patches(graph: Graph): WeightPatches;
}

/**
 * Sessions of one model's graphs, built through the compile cache: the first load of a model builds and writes each
 * graph with its converted weights; later loads only open the cached files. `sha256` identifies the model's files;
 * `build` makes the graph of a name. Sessions are created on first request. A network with a WeightChange gets it
 * merged into its weights as they are loaded; the cache entry stays the model's own.
 */
export class CachedSessions<N extends string> {
  private readonly sessions = new Map<N, Promise<Session>>();
  private readonly changes = new Map<N, WeightChange>();
  /**
   * For a loaded session whose weights can be rewritten in place: them, and the graph the patches are found in
   * (built when first needed, if the load found its entry by the memo).
   */
  private readonly live = new Map<N, { session: Session; weights: LiveWeights; graph: () => Graph }>();
  private code: string | undefined;
  private memoCode: string | undefined;
  private int8Code: string | undefined;
  private blockSize: Promise<number> | undefined;

  constructor(
    readonly sha256: string,
    private readonly cache: CompileCache,
    private readonly opts: NetworkOptions,
    /** `forInt8`: the fp32 graph an int8 form is made from (its quantized layers on stored weights). */
    private readonly build: (name: N, attention: AttentionKind, forInt8: boolean) => Graph,
    /** Session options of one network on top of `opts` (e.g. the VAE's memory pattern off). */
    private readonly sessionOptions: (name: N) => Partial<SessionOptions> = () => ({}),
    /** Which int8 form a network has (models/precision.ts), if any: the others stay fp32 at any precision. */
    private readonly int8Form: (name: N) => Int8Network | undefined = () => undefined,
    /**
     * What `build` reads besides the files `sha256` hashes and the code of this module and GRAPH_CODE (the model's
     * config, as text): given, a warm load finds its cache entry by a memo of these instead of building the graph
     * to digest it. Undefined: the graph is built at every load.
     */
    private readonly buildInputs?: (name: N) => string,
    /** The int8 calibration the model's folder ships (int8-shipped-calibration.ts), used before measuring one. */
    private readonly shippedCalibration?: string,
    /** Which networks have a weight-only int8 form instead (models/precision.ts: no calibration, fp32 arithmetic). */
    private readonly weightOnlyInt8Form: (name: N) => WeightOnlyInt8Network | undefined = () => undefined,
  ) {}

  /** A session, created on first request. */
  get(name: N): Promise<Session> {
    let s = this.sessions.get(name);
    if (!s) {
      s = this.load(name);
      this.sessions.set(name, s);
      s.catch(() => this.sessions.delete(name));
    }
    return s;
  }

  /** Whether the session of `name` was created (or is being created). */
  has(name: N): boolean {
    return this.sessions.has(name);
  }

  /**
   * Sets the change to a network's weights (undefined: none). When it differs from the current one, a loaded
   * session gets the new weights in place where its weights file allows (live-weights.ts: the changed tensors
   * rebuilt, no new session); otherwise it is released, and the next `get` opens the network with the new change:
   * only the cached graph's weights are rebuilt, never the graph. The caller makes sure no run is using the
   * session. Returns whether the network's weights change.
   */
  async setWeightChange(name: N, change: WeightChange | undefined): Promise<boolean> {
    if ((this.changes.get(name)?.id ?? "") === (change?.id ?? "")) return false;
    if (change) this.changes.set(name, change);
    else this.changes.delete(name);
    if (await this.rewriteInPlace(name, change)) return true;
    const loaded = this.sessions.get(name);
    this.sessions.delete(name);
    this.live.delete(name);
    // Released before the next one is opened: two copies of a UNet's weights would double the memory.
    await (await loaded?.catch(() => undefined))?.release();
    return true;
  }

  /**
   * Whether the loaded session of `name` now computes with `change`, its weights rewritten in place. A change that
   * does not fit the graph, or weights the runtime does not read in place, leave that to a reopen (which reports
   * the former); a rewrite that failed half-way leaves weights that are neither set's, and the session is dropped.
   */
  private async rewriteInPlace(name: N, change: WeightChange | undefined): Promise<boolean> {
    const live = this.live.get(name);
    if (!live || (await this.sessions.get(name)?.catch(() => undefined)) !== live.session) return false;
    let patches;
    try {
      patches = change?.patches(live.graph()) ?? new Map();
    } catch {
      return false;
    }
    try {
      return await live.weights.rewrite(patches);
    } catch {
      return false;
    }
  }

  /** The id of the change merged into a network (undefined: its weights are the model's). */
  weightChange(name: N): string | undefined {
    return this.changes.get(name)?.id;
  }

  private async load(name: N): Promise<Session> {
    let start = performance.now();
    const lap = (phase: "key" | "build" | "load"): void => {
      const now = performance.now();
      this.opts.onTiming?.({ phase, network: name, seconds: (now - start) / 1000 });
      start = now;
    };
    const blockSize = await this.nchwcBlockSize();
    const attention = this.opts.attention ?? DEFAULT_ATTENTION;
    const form = this.opts.precision === "int8" ? this.int8Form(name) : undefined;
    const weightOnly = this.opts.precision === "int8" && !form ? this.weightOnlyInt8Form(name) : undefined;
    const int8 = form !== undefined || weightOnly !== undefined;
    // An int8 entry sits beside the fp32 one: neither key's prefix starts the other's, so building one keeps the other.
    const prefix = `${this.sha256.slice(0, 24)}-${int8 ? "int8-" : ""}${name}-`;
    // An int8 graph holds its calibrated scales, which no memo id describes: it is always built. The memo's ids
    // describe fp32 builds only, so a weight-only int8 graph is built too (the text encoders: well under a second).
    const memo = int8 ? undefined : this.memoId(name, attention, blockSize);
    const memoKey = memo && this.keyMemo.get(memo);
    let graph: Graph | undefined;
    let key: string;
    if (memoKey?.startsWith(prefix)) key = memoKey;
    else {
      let built = this.build(name, attention, form !== undefined);
      // An int8 graph holds its calibrated scales, so calibration comes before its key.
      if (form) built = int8Graph(form, built, await this.activationRanges(form, blockSize));
      if (weightOnly) built = weightOnlyInt8Graph(weightOnly, built);
      graph = nchwcLayout(built, blockSize);
      key = `${prefix}${this.graphDigest(graph, blockSize, int8 ? "int8" : "fp32")}`;
      if (memo) this.keyMemo.set(memo, key);
    }
    // Found by the memo (fp32 only), the graph is built only where it is needed: a change's patches, a cache miss.
    const graphNow = (): Graph => (graph ??= nchwcLayout(this.build(name, attention, false), blockSize));
    // Before any building: a change that does not fit the network fails here, in a moment.
    const change = this.changes.get(name);
    const patches = change?.patches(graphNow());
    lap("key");
    let building = false;
    const entry = this.cache.getOrBuild(
      key,
      graphNow,
      (e) => {
        if (e.hit) return;
        building = true;
        this.opts.onStatus?.(`building the ${name} graph (${e.reason}); later runs reuse it`);
      },
      prefix,
    );
    if (building) lap("build");
    const patched = patches !== undefined && patches.size > 0;
    try {
      // onnxruntime's QLinearConv runs about twice as fast on weights it packed at load; they are int8, a quarter
      // of the fp32 weights the packing is off for (SessionOptions.prepack).
      const { session, weights } = await this.cache.openLive(
        entry,
        { ...this.opts, ...this.sessionOptions(name), ...(form ? { prepack: true } : {}) },
        patches,
      );
      if (weights) this.live.set(name, { session, weights, graph: this.weightIndexOf(graph, graphNow) });
      else this.live.delete(name);
      lap("load");
      return session;
    } catch (e) {
      // An entry that passed validation but that the runtime refuses is dropped, so the next load rebuilds it
      // (unless patched weights were what it refused: the entry is then not in question).
      if (!patched) this.cache.evict(key, entry.id);
      throw e;
    }
  }

  /**
   * The activation ranges the int8 form of a network quantizes its convolutions with: read from the cache folder,
   * else from the calibration the model ships where it is valid (`useShipped`), else measured once (opts.calibrate)
   * on the fp32 network with observers (onnx/activation-ranges.ts); kept in the cache folder.
   * A UNet variant that takes residuals uses the plain UNet's ranges (its convolutions are the same tensors).
   */
  private async activationRanges(
    form: Int8Network,
    blockSize: number,
    plain = this.build(form as unknown as N, this.opts.attention ?? DEFAULT_ATTENTION, true),
    useShipped = true,
  ): Promise<ActivationRanges> {
    this.code ??= codeDigest(GRAPH_CODE);
    const file = join(this.cache.dir, `${this.sha256.slice(0, 24)}-int8-${form}-ranges-${this.code.slice(0, 16)}.json`);
    const tensors = calibratedTensors(form, plain);
    // Ranges of the fp32 graph's tensors: valid while that graph is the same (its code is in the name) and they
    // cover what the int8 form quantizes now (models/precision.ts may have changed).
    const stored = readRanges(file);
    if (stored && tensors.every((t) => stored.has(t))) return stored;
    const shippedFile = useShipped ? this.shippedCalibration : undefined;
    const shipped = shippedFile && this.shippedRanges(shippedFile, form, plain, tensors);
    if (shipped) {
      writeRanges(file, shipped);
      return shipped;
    }
    if (!this.opts.calibrate)
      throw new InputError(
        `int8 ${form}: no calibrated activation ranges in ${this.cache.dir} and no way to measure them here; ` +
          "load the model through loadPipeline (it calibrates on first use) or use precision fp32",
      );
    const start = performance.now();
    this.opts.onStatus?.(`calibrating the int8 ${form} (first int8 use of this model; later runs reuse it)`);
    const observer = nchwcLayout(observeRanges(plain, tensors), blockSize);
    const key = `${this.sha256.slice(0, 24)}-calibrate-${form}-${this.graphDigest(observer, blockSize)}`;
    const entry = this.cache.getOrBuild(key, () => observer);
    const statistics = new ActivationStatistics();
    try {
      const session = await this.cache.open(entry, { ...this.opts, ...this.sessionOptions(form as unknown as N) });
      session.observe((outputs) => statistics.add(outputs));
      try {
        await this.opts.calibrate(form, session);
      } finally {
        await session.release();
      }
    } finally {
      this.cache.evict(key, entry.id); // the observed graph is of no use once its ranges are kept
    }
    const ranges = statistics.ranges();
    writeRanges(file, ranges);
    this.opts.onTiming?.({ phase: "calibrate", network: form, seconds: (performance.now() - start) / 1000 });
    return ranges;
  }

  /** The shipped file's ranges for a network where they apply; where they do not, says why (and they are measured). */
  private shippedRanges(
    file: string,
    form: Int8Network,
    plain: Graph,
    tensors: string[],
  ): ActivationRanges | undefined {
    const graph = () => fp32GraphDigest(plain);
    const found = shippedRanges(file, { modelSha256: this.sha256, network: form, graph, tensors });
    if (found.kind === "valid") {
      this.opts.onStatus?.(`int8 ${form}: using the calibration shipped with the model (${file})`);
      return found.ranges;
    }
    if (found.kind === "stale") this.opts.onStatus?.(`int8 ${form}: ignoring ${file}: ${found.reason}`);
    return undefined;
  }

  /**
   * A network's int8 calibration as a model folder ships it: its ranges (from the cache, or measured now as on a
   * first int8 load; never from the file being replaced) and the digest of the fp32 graph they name tensors of.
   */
  async int8Calibration(form: Int8Network): Promise<ShippedNetwork> {
    const plain = this.build(form as unknown as N, this.opts.attention ?? DEFAULT_ATTENTION, true);
    const ranges = await this.activationRanges(form, await this.nchwcBlockSize(), plain, false);
    return { graph: fp32GraphDigest(plain), ranges };
  }

  /** The index of a network's weights: of its graph when it was built, else built from it when first asked for. */
  private weightIndexOf(built: Graph | undefined, build: () => Graph): () => Graph {
    let index = built && weightIndex(built);
    return () => (index ??= weightIndex(build()));
  }

  /** The GraphKeyMemo id of a network's fp32 graph (undefined when the build's inputs are not described). */
  private memoId(name: N, attention: AttentionKind, blockSize: number): string | undefined {
    if (!this.buildInputs) return undefined;
    // This module's code (the builds it makes, e.g. buildNetwork) and what it imports, with the builders' own.
    this.memoCode ??= codeDigest([new URL(import.meta.url), ...GRAPH_CODE]);
    const head = `format ${FORMAT_VERSION}\0nchwc ${blockSize}\0attention ${attention}`;
    return GraphKeyMemo.id([head, this.memoCode, this.sha256, name, this.buildInputs(name)]);
  }

  private get keyMemo(): GraphKeyMemo {
    return new GraphKeyMemo(join(this.cache.dir, ".graph-keys"));
  }

  private graphDigest(graph: Graph, blockSize: number, precision: Precision = "fp32"): string {
    this.code ??= codeDigest(GRAPH_CODE);
    if (precision === "fp32") return graphDigest(graph, blockSize, this.code, precision);
    this.int8Code ??= codeDigest(INT8_CODE);
    return graphDigest(graph, blockSize, `${this.code}+${this.int8Code}`, precision);
  }

  /** The block size of the runtime's NCHWc layout, asked once; other execution providers get plain graphs. */
  private nchwcBlockSize(): Promise<number> {
    const providers = this.opts.executionProviders ?? ["cpu"];
    if (providers.some((p) => p !== "cpu")) return Promise.resolve(1);
    this.blockSize ??= nchwcBlockSize(join(this.cache.dir, "nchwc.json"));
    return this.blockSize;
  }

  /** Releases the sessions of `names` (default: all); a later `get` creates them again. */
  async release(...names: N[]): Promise<void> {
    const chosen = names.length ? names : [...this.sessions.keys()];
    const all = chosen.map((n) => this.sessions.get(n)).filter((s): s is Promise<Session> => s !== undefined);
    for (const n of chosen) {
      this.sessions.delete(n);
      this.live.delete(n);
    }
    for (const s of all) await (await s.catch(() => undefined))?.release();
  }
}

/** The hash of a model's files, remembered in the cache folder by path, size and mtime (hash-memo.ts). */
export async function modelSha256(
  files: Pick<Checkpoint, "layout" | "path" | "files">,
  cacheDir: string,
  onStatus?: (message: string) => void,
): Promise<string> {
  const memo = new HashMemo(join(cacheDir, "hashes.json"));
  return checkpointSha256(files, (p) =>
    memo.hash(p, (abs) => {
      // Only worth a word when it takes a while (a few seconds per GB).
      if (statSync(abs).size > 256 * 2 ** 20) onStatus?.(`hashing ${abs} (once per file)`);
      return sha256File(abs);
    }),
  );
}

/**
 * The ONNX sessions of one checkpoint (CachedSessions). The VAE encoder is loaded on first use (text-to-image never
 * needs it), and so is the UNet variant that takes ControlNet residuals.
 */
export class Networks extends CachedSessions<NetworkName> {
  private constructor(
    readonly checkpoint: Checkpoint,
    sha256: string,
    cache: CompileCache,
    opts: NetworkOptions,
  ) {
    super(
      sha256,
      cache,
      opts,
      (name, attention, forInt8) => buildNetwork(checkpoint, name, attention, forInt8),
      (name) => NETWORK_SESSION[name] ?? {},
      (name) => (name in UNET_VARIANTS ? "unet" : name === "vae_decoder" ? "vae_decoder" : undefined),
      // What else buildNetwork reads: the config (a --config or detected family can differ for the same files), and
      // how the checkpoint's tensors were laid out and named.
      () =>
        JSON.stringify({
          config: checkpoint.config,
          layout: checkpoint.layout,
          inpainting: checkpoint.inpainting,
          textEncoderFolders: checkpoint.textEncoderFolders,
        }),
      shippedCalibrationPath(checkpoint),
      (name) => (name === "text_encoder" || name === "text_encoder_2" ? "text_encoder" : undefined),
    );
  }

  static async open(checkpoint: Checkpoint, opts: NetworkOptions = {}): Promise<Networks> {
    const start = performance.now();
    const cacheDir = opts.cacheDir ?? defaultCacheDir();
    const sha256 = await modelSha256(checkpoint, cacheDir, opts.onStatus);
    opts.onTiming?.({ phase: "hash", seconds: (performance.now() - start) / 1000 });
    return new Networks(checkpoint, sha256, new CompileCache(cacheDir, { storage: opts.cacheWeights }), opts);
  }

  /** The UNet's change (a LoRA) goes to every variant: those that take control residuals have its weights. */
  override async setWeightChange(name: NetworkName, change: WeightChange | undefined): Promise<boolean> {
    if (name !== "unet") return super.setWeightChange(name, change);
    let changed = false;
    for (const variant of Object.keys(UNET_VARIANTS) as UNetVariant[])
      changed = (await super.setWeightChange(variant, change)) || changed;
    return changed;
  }
}

/**
 * The checkpoint weights of a graph by name and origin, without their data or the nodes: what a WeightChange finds
 * its tensors by, kept while a session is open without holding on to what building the graph needed.
 */
function weightIndex(graph: Graph): Graph {
  const index = new Graph(graph.name);
  for (const init of graph.initializers.values()) {
    if (!init.origin) continue;
    index.initializers.set(init.name, {
      name: init.name,
      dims: init.dims,
      dtype: init.dtype,
      origin: init.origin,
      load: () => {
        throw new InternalError(`${graph.name}: the weight index holds no data (${init.name})`);
      },
    });
  }
  return index;
}

/**
 * The version of the kept ranges' meaning: 2 since they are clipped where 8-bit error is least (clippedRange); a
 * cache's version-1 ranges (each tensor's full extent) are measured again.
 */
const RANGES_VERSION = 2;

/** Keeps ranges in the cache folder, whole or not at all. */
function writeRanges(file: string, ranges: ActivationRanges): void {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify({ version: RANGES_VERSION, ranges: Object.fromEntries(ranges) }));
  renameSync(tmp, file);
}

/** Ranges kept by an earlier calibration, or undefined when there are none (or they cannot be read). */
function readRanges(file: string): ActivationRanges | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { version?: number; ranges?: Record<string, Range> };
    if (parsed.version !== RANGES_VERSION || !parsed.ranges) return undefined;
    return new Map(Object.entries(parsed.ranges));
  } catch {
    return undefined; // measured again
  }
}

function buildNetwork(checkpoint: Checkpoint, name: NetworkName, attention: AttentionKind, forInt8 = false): Graph {
  const { config, unet, vae, textEncoder, textEncoder2 } = checkpoint;
  switch (name) {
    // With an input for textual-inversion vectors, so embeddings never change the graph.
    case "text_encoder":
      return buildClipText(config.textEncoder, new ScopedWeights(textEncoder), { extraTokens: true });
    case "text_encoder_2":
      if (!config.textEncoder2 || !textEncoder2) throw new Error(`${checkpoint.path} has no second text encoder`);
      return buildClipText(config.textEncoder2, new ScopedWeights(textEncoder2), { extraTokens: true });
    case "unet":
      return buildUNet(config.unet, new ScopedWeights(unet), { attention });
    case "unet_control":
    case "unet_adapter":
    case "unet_control_adapter":
      return buildUNet(config.unet, new ScopedWeights(unet), { attention, ...UNET_VARIANTS[name] });
    case "vae_decoder":
      return buildVaeDecoder(config.vae, new ScopedWeights(vae), {
        attention,
        upsampling: forInt8 ? "nearest" : "parity",
      });
    case "vae_encoder":
      return buildVaeEncoder(config.vae, new ScopedWeights(vae), { attention });
  }
}
