import { availableParallelism } from "node:os";
import ort from "onnxruntime-node";
import { InternalError } from "../errors.js";

export interface SessionOptions {
  /** Intra-op threads; defaults to the machine's cores. */
  threads?: number;
  /** onnxruntime graph optimization level. "all" includes layout transforms (NCHWc) that speed up CPU convolutions. */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Execution providers in order of preference (default: cpu). */
  executionProviders?: string[];
  /**
   * Also write the graph as onnxruntime optimized it (layout transforms included) to this .onnx path, with its
   * initializers inline (small graphs only: protobuf stops at 2 GB). Used to see what the runtime makes of a graph.
   */
  saveOptimized?: { modelPath: string };
  /**
   * Let onnxruntime copy each MatMul weight into its packed layout at load (default: no). Our graphs' weights are
   * files that onnxruntime maps (a compact cache entry's are rebuilt in /dev/shm), and a mapped file stays in memory
   * whole while the session lives, so a packed copy holds those weights twice: SDXL's UNet (10.3 GB, 8.8 GB of it
   * MatMul weights) needed about 19 GB and could not load on a 24 GB machine. Without it, measured on 2 cores: the
   * SD1.5 UNet's guided 512 px step takes the same CPU time (10.3 s against 10.8 s, alternating runs), the text
   * encoder's 8% more (0.24 s against 0.22 s), and the UNet loads in 2.1 s instead of 13.5 s.
   */
  prepack?: boolean;
  /**
   * onnxruntime's memory pattern (default: on): from the second run, every intermediate of a run in one block
   * planned from the first. The block comes from the same arena as the first run's separate blocks, which it does not
   * fit, so the arena grows by about the run's working memory once more. Worth it for a network run many times on
   * small tensors; see Networks for the ones that run without.
   */
  memPattern?: boolean;
  /**
   * Keep every weight where onnxruntime maps it from the weights file (default: no). Its own NCHWc pass (level
   * "all") rewrites the convolutions that nchwc-layout.ts leaves to it (fewer output channels than a block: the
   * SD1.5 UNet's conv_out) into copies of their weights; with it off they run in the plain layout, where that
   * conv_out is about 0.2 GFLOP of the several hundred a guided 512 px step takes. Networks whose weights are
   * rewritten in place (live-weights.ts: LoRAs) need every weight mapped.
   */
  weightsInPlace?: boolean;
  /** Whether onnxruntime's threads spin for more work after a run (default: yes, its own default). */
  spinning?: boolean;
}

export type FeedValue =
  | { data: Float32Array; dims: readonly number[] }
  | { data: BigInt64Array; dims: readonly number[] };

export interface RunResult {
  data: Float32Array;
  dims: readonly number[];
}

/** One onnxruntime session for one network graph. */
export class Session {
  private readonly cleanups: (() => void)[] = [];
  private readonly observers: ((outputs: Readonly<Record<string, RunResult>>) => void)[] = [];

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly source: string,
  ) {}

  /** `model` is a path to an .onnx file (its external weights beside it) or the serialized bytes. */
  static async create(model: string | Uint8Array, opts: SessionOptions = {}): Promise<Session> {
    const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: opts.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      graphOptimizationLevel: opts.optimization ?? "all",
      executionProviders: opts.executionProviders ?? ["cpu"],
      // Our own buffers are reused between steps; the arena keeps ORT's intermediate allocations warm.
      enableCpuMemArena: true,
      enableMemPattern: opts.memPattern ?? true,
      // onnxruntime's warnings (e.g. that a saved optimized graph is CPU-specific, which our cache accounts for)
      // are noise on a user's terminal; errors still surface as exceptions.
      logSeverityLevel: 3,
      extra: {
        ...(opts.prepack ? {} : { session: { disable_prepacking: "1" } }),
        ...(opts.weightsInPlace ? { optimization: { disable_specified_optimizers: "NchwcTransformer" } } : {}),
        ...(opts.spinning === false ? { "session.intra_op.allow_spinning": "0" } : {}),
      },
    };
    if (opts.saveOptimized) options.optimizedModelFilePath = opts.saveOptimized.modelPath;
    try {
      const session =
        typeof model === "string"
          ? await ort.InferenceSession.create(model, options)
          : await ort.InferenceSession.create(model, options);
      return new Session(session, typeof model === "string" ? model : "<in-memory graph>");
    } catch (e) {
      throw new InternalError(
        `onnxruntime could not load ${typeof model === "string" ? model : "the graph"}: ${(e as Error).message}`,
      );
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(feeds: Record<string, FeedValue>, outputs?: readonly string[]): Promise<Record<string, RunResult>> {
    const ortFeeds = toOrtFeeds(feeds);
    const result = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    const out: Record<string, RunResult> = {};
    for (const [name, t] of Object.entries(result)) {
      if (t.type !== "float32") throw new InternalError(`output ${name} is ${t.type}, expected float32`);
      out[name] = { data: t.data as Float32Array, dims: t.dims };
    }
    for (const fn of this.observers) fn(out);
    return out;
  }

  /** Calls `fn` with the outputs of every later `run` (calibration reads what an observed graph measures). */
  observe(fn: (outputs: Readonly<Record<string, RunResult>>) => void): void {
    this.observers.push(fn);
  }

  /**
   * Runs with the float outputs written into the caller's arrays (each of exactly the output's size). Through
   * onnxruntime-node this saves no memory: it still allocates a fresh buffer for every output and copies it over
   * (a page fault per 4 KiB touched), so code that must not allocate per run (the LoRA merge, product-simd.ts)
   * computes outside onnxruntime instead.
   */
  async runInto(
    feeds: Record<string, FeedValue>,
    outputs: Record<string, { data: Float32Array; dims: readonly number[] }>,
  ): Promise<void> {
    const ortFeeds = toOrtFeeds(feeds);
    const fetches: Record<string, ort.Tensor> = {};
    for (const [name, v] of Object.entries(outputs)) fetches[name] = new ort.Tensor("float32", v.data, [...v.dims]);
    await this.session.run(ortFeeds, fetches);
  }

  /** Runs `fn` once the session is released (files the runtime keeps mapped until then). */
  onRelease(fn: () => void): void {
    this.cleanups.push(fn);
  }

  async release(): Promise<void> {
    await this.session.release();
    for (const fn of this.cleanups.splice(0)) fn();
  }
}

function toOrtFeeds(feeds: Record<string, FeedValue>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, v] of Object.entries(feeds)) {
    out[name] =
      v.data instanceof BigInt64Array
        ? new ort.Tensor("int64", v.data, [...v.dims])
        : new ort.Tensor("float32", v.data, [...v.dims]);
  }
  return out;
}
