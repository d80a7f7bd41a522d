import type { Worker } from "node:worker_threads";
import { InputError, InternalError } from "../errors.js";
import type { ImageFormat } from "../image/output-format.js";
import type { LoadOptions } from "../pipeline/load-pipeline.js";
import type { GenerateParams, StepEvent, StepPreview } from "../pipeline/params.js";
import type { GeneratedImage, GenerateResult } from "../pipeline/stable-diffusion.js";
import { ControlBlock } from "./control-block.js";
import type {
  HostMessage,
  LoadedModel,
  ThreadMessage,
  TransportedImage,
  TransportedPreview,
  WorkerData,
} from "./messages.js";
import { startThread } from "./thread-script.js";
import { restoreError } from "./transported-error.js";

/** A step as the host sees it: StepEvent, plus whether the thread sends this step's preview unasked. */
export interface WorkerStepEvent extends StepEvent {
  previewing: boolean;
}

/** GenerateParams, plus what only a pipeline in a worker needs; a skip goes through `control` (skipCurrent). */
export interface WorkerGenerateParams extends Omit<GenerateParams, "onStep" | "skipBatch"> {
  onStep?: (e: WorkerStepEvent) => void;
  /**
   * The formats each image is encoded to in the thread, watermarks and credentials included (default: PNG);
   * `png()` and `encode(format)` of the result hand these out without another trip to the thread.
   */
  formats?: ImageFormat[];
  /**
   * Previews made unasked, at most this often, plus each batch's last step (checked like any preview; see
   * StepPreviews); each goes to `onPreview`, and to the `preview()` of its step's event. Undefined: previews
   * are made only when a step's `preview()` asks.
   */
  previewIntervalMs?: number;
  onPreview?: (preview: StepPreview, at: { batch: number; step: number }) => void;
  /** Live progress and cancellation through shared memory (the caller reads `progress()` without waiting). */
  control?: ControlBlock;
}

/** Previews kept per generation for `preview()` calls (each may hold a PNG). */
const KEPT_PREVIEWS = 8;

/** How long `close()` waits for the thread to release its networks before it is stopped. */
const CLOSE_WAIT_MS = 30_000;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(e: Error): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A preview nobody asked for may be rejected (the thread could not make it): that must not be "unhandled".
  promise.catch(() => undefined);
  const d: Deferred<T> = {
    promise,
    resolve: (v) => ((d.settled = true), resolve(v)),
    reject: (e) => ((d.settled = true), reject(e)),
    settled: false,
  };
  return d;
}

interface Generation {
  params: WorkerGenerateParams;
  control: ControlBlock;
  result: Deferred<GenerateResult>;
  previews: Map<string, Deferred<StepPreview>>;
  /** done or failed arrived; kept only until its last preview is in. */
  finished: boolean;
}

/**
 * A pipeline loaded in a worker thread: `generate` takes the same parameters and gives the same result as
 * StableDiffusionPipeline's (progress, previews, cancellation and errors cross back; errors keep their class),
 * while the calling thread's event loop stays free. One generation runs at a time; others wait their turn.
 *
 * Why a thread rather than a child process (measured on this 2-core machine with the same 2048^3 MatMul model and
 * sharp, see docs/server.md): onnxruntime-node and sharp load, run and unload correctly in worker threads; a thread
 * starts in about 300 ms against 420 ms for a process, a message takes 0.05 ms against 0.2 ms and a 768 KB image
 * is transferred in about 0.1-3 ms against 6 ms copied. Above all, the cancel flag and the progress live in
 * shared memory that the generation reads synchronously after each step: onnxruntime-node schedules each run
 * with setImmediate, so a cancel sent as a message to a process would be read only after the next step had
 * started. And a thread ends with its process: a worker killed with SIGKILL leaves nothing computing.
 */
export class PipelineWorker {
  private nextId = 1;
  private readonly generations = new Map<number, Generation>();
  /** Generations run one after another: the thread has one pipeline and the cores are shared. */
  private turn: Promise<unknown> = Promise.resolve();
  private exited = false;
  private closing: Promise<void> | undefined;
  private lastError: Error | undefined;
  private readonly exit: Promise<number>;

  private constructor(
    private readonly thread: Worker,
    /** What the thread loaded. */
    readonly model: LoadedModel,
    readonly path: string,
  ) {
    this.exit = new Promise((resolve) => thread.once("exit", resolve));
    thread.on("message", (m: ThreadMessage) => this.onMessage(m));
    thread.on("error", (e) => (this.lastError = e));
    void this.exit.then((code) => this.onExit(code));
  }

  /**
   * Loads the model in a new worker thread; rejects with the loading error (same class and message as
   * loadPipeline's) when it cannot.
   */
  static start(path: string, options: LoadOptions = {}): Promise<PipelineWorker> {
    const { onStatus, ...rest } = options;
    const functions = Object.keys(rest.upscalers ?? {});
    if (functions.length > 0)
      return Promise.reject(
        new InputError(
          `the upscalers ${functions.map((n) => JSON.stringify(n)).join(", ")} are functions, which cannot be sent to a worker thread: ` +
            "put their model files in a folder and name it with upscalerSearch (the thread searches it itself), or load without worker",
        ),
      );
    const data: WorkerData = { path, options: rest };
    const thread = startThread(import.meta.url, "./pipeline-thread", { workerData: data });
    return new Promise((resolve, reject) => {
      let lastError: Error | undefined;
      const cleanup = () => {
        thread.off("message", onMessage);
        thread.off("error", onError);
        thread.off("exit", onExit);
      };
      const onMessage = (m: ThreadMessage) => {
        if (m.type === "status") onStatus?.(m.message);
        else if (m.type === "loaded") {
          cleanup();
          const worker = new PipelineWorker(thread, m.model, path);
          if (onStatus) thread.on("message", (s: ThreadMessage) => s.type === "status" && onStatus(s.message));
          resolve(worker);
        } else if (m.type === "load-failed") {
          cleanup();
          void thread.terminate();
          reject(restoreError(m.error));
        }
      };
      const onError = (e: Error) => (lastError = e);
      const onExit = (code: number) => {
        cleanup();
        reject(
          new InternalError(
            `the generation thread for ${path} ended while loading (exit code ${code})${lastError ? `: ${lastError.message}` : ""}`,
          ),
        );
      };
      thread.on("message", onMessage);
      thread.on("error", onError);
      thread.on("exit", onExit);
    });
  }

  /** False once the thread has ended (closed, or died: then every later generate fails at once). */
  get alive(): boolean {
    return !this.exited && this.closing === undefined;
  }

  generate(params: WorkerGenerateParams): Promise<GenerateResult> {
    const run = this.turn.then(() => this.run(params));
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** Cancels what runs, lets the thread release its networks, and ends it. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.exited) return;
      for (const g of this.generations.values()) g.control.cancel();
      this.post({ type: "close" });
      const timer = setTimeout(() => void this.thread.terminate(), CLOSE_WAIT_MS);
      await this.exit;
      clearTimeout(timer);
    })();
    return this.closing;
  }

  private run(params: WorkerGenerateParams): Promise<GenerateResult> {
    if (this.exited || this.closing) return Promise.reject(this.endedError());
    const id = this.nextId++;
    const control = params.control ?? new ControlBlock();
    const g: Generation = { params, control, result: deferred(), previews: new Map(), finished: false };
    this.generations.set(id, g);
    const { onStep: _s, signal, formats, previewIntervalMs, onPreview: _p, control: _c, ...rest } = params;
    const onAbort = () => {
      control.cancel();
      this.post({ type: "cancel", id });
    };
    if (signal?.aborted) control.cancel();
    else signal?.addEventListener("abort", onAbort, { once: true });
    this.post({
      type: "generate",
      id,
      params: rest,
      formats: formats ?? ["png"],
      previewIntervalMs,
      control: control.buffer,
    });
    return g.result.promise.finally(() => signal?.removeEventListener("abort", onAbort));
  }

  private post(m: HostMessage): void {
    this.thread.postMessage(m);
  }

  private onMessage(m: ThreadMessage): void {
    if (m.type === "status" || m.type === "loaded" || m.type === "load-failed") return;
    const g = this.generations.get(m.id);
    if (!g) return;
    switch (m.type) {
      case "step": {
        const { id, type: _t, ...e } = m;
        const event: WorkerStepEvent = { ...e, preview: () => this.preview(id, g, e.batch, e.step, e.previewing) };
        if (e.previewing) this.waiter(g, e.batch, e.step);
        g.params.onStep?.(event);
        break;
      }
      case "preview": {
        const d = this.waiter(g, m.batch, m.step);
        if (m.preview) {
          const p = toStepPreview(m.preview);
          d.resolve(p);
          g.params.onPreview?.(p, { batch: m.batch, step: m.step });
        } else {
          d.reject(
            m.error ? restoreError(m.error) : new InternalError(`the preview of step ${m.step} is no longer kept`),
          );
        }
        this.forgetIfDone(m.id, g);
        break;
      }
      case "done":
        g.finished = true;
        g.result.resolve({
          images: m.images.map(toGeneratedImage),
          controlMaps: m.controlMaps,
          parameters: m.parameters,
          info: m.info,
          warnings: m.warnings,
        });
        this.forgetIfDone(m.id, g);
        break;
      case "failed":
        g.finished = true;
        g.result.reject(restoreError(m.error));
        this.forgetIfDone(m.id, g);
        break;
    }
  }

  private preview(id: number, g: Generation, batch: number, step: number, previewing: boolean): Promise<StepPreview> {
    const key = `${batch}:${step}`;
    const known = g.previews.get(key);
    if (known) return known.promise;
    const d = this.waiter(g, batch, step);
    if (!previewing) {
      if (this.exited) d.reject(this.endedError());
      else this.post({ type: "preview", id, batch, step });
    }
    return d.promise;
  }

  /** The promise of a step's preview, created on first mention; the oldest settled ones are dropped. */
  private waiter(g: Generation, batch: number, step: number): Deferred<StepPreview> {
    const key = `${batch}:${step}`;
    let d = g.previews.get(key);
    if (!d) {
      g.previews.set(key, (d = deferred()));
      for (const [k, old] of g.previews) {
        if (g.previews.size <= KEPT_PREVIEWS) break;
        if (old.settled) g.previews.delete(k);
      }
    }
    return d;
  }

  private forgetIfDone(id: number, g: Generation): void {
    if (g.finished && [...g.previews.values()].every((d) => d.settled)) this.generations.delete(id);
  }

  private onExit(code: number): void {
    this.exited = true;
    const e = this.endedError(code);
    for (const g of this.generations.values()) {
      if (!g.result.settled) g.result.reject(e);
      for (const d of g.previews.values()) if (!d.settled) d.reject(e);
    }
    this.generations.clear();
  }

  private endedError(code?: number): Error {
    if (this.closing) return new InternalError(`the pipeline for ${this.path} was closed`);
    const why = this.lastError ? `: ${this.lastError.message}` : "";
    return new InternalError(
      `the generation thread for ${this.path} ended unexpectedly${code === undefined ? "" : ` (exit code ${code})`}${why}`,
    );
  }
}

function toStepPreview(p: TransportedPreview): StepPreview {
  return {
    png: p.png && Buffer.from(p.png.buffer, p.png.byteOffset, p.png.byteLength),
    safety: p.safety,
    step: p.step,
  };
}

function toGeneratedImage(t: TransportedImage): GeneratedImage {
  const encode = async (format: ImageFormat): Promise<Buffer> => {
    const bytes = t.encoded[format];
    if (!bytes) {
      throw new InputError(
        `the image was encoded in the worker as ${Object.keys(t.encoded).join(", ") || "nothing"} only: pass formats: ["${format}"] to generate`,
      );
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  return {
    image: t.image,
    seed: t.seed,
    ...(t.subseed !== undefined ? { subseed: t.subseed } : {}),
    infotext: t.infotext,
    encode,
    png: () => encode("png"),
  };
}
