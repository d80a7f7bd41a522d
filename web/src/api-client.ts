/**
 * Typed access to the server's `/api/v1` endpoints. The types come from the server's own schemas, imported as
 * types only so that zod never ends up in the page's bundle.
 */
import type {
  ApiError as ApiErrorBody,
  JobCreated,
  JobCreateRequest,
  JobList,
  JobStatus,
  ModelList,
  SamplerList,
  SseEvent,
  SseEventName,
} from "../../src/server/api-types.js";

export type {
  AvailableModel,
  ControlNetUnitRequest,
  ImageRef,
  JobCreateRequest,
  JobParams,
  JobType,
  JobStatus,
  ModelInfo,
  ModelList,
  SamplerInfo,
  SseEvent,
} from "../../src/server/api-types.js";

/** A saved prompt style as A1111's GET /sdapi/v1/prompt-styles lists it. */
export interface PromptStyle {
  name: string;
  prompt: string | null;
  negative_prompt: string | null;
}

/** A LoRA as A1111's GET /sdapi/v1/loras lists it. */
export interface LoraInfo {
  name: string;
  alias: string;
  path: string;
  metadata: Record<string, unknown>;
}

/** A1111's GET /sdapi/v1/embeddings: embeddings that fit the model, and those that do not, by trigger word. */
export interface EmbeddingList {
  loaded: Record<string, { shape: number; vectors: number }>;
  skipped: Record<string, { shape: number; vectors: number }>;
}

/** An upscaler as A1111's GET /sdapi/v1/upscalers lists it (the fields the page reads). */
export interface UpscalerInfo {
  name: string;
  scale: number | null;
}

/** A non-2xx answer, with the server's explanation when it gave one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Where the bearer token comes from; `ask` is called after a 401 and may return null when the user gives up. */
export interface TokenSource {
  get(): string | null;
  ask(reason: string): Promise<string | null>;
}

const FINAL: ReadonlySet<SseEventName> = new Set(["done", "error", "cancelled"]);

export class ApiClient {
  /** Object URLs of images fetched with a token, so each image is downloaded once per page. */
  private readonly blobUrls = new Map<string, Promise<string>>();

  constructor(
    private readonly tokens: TokenSource,
    private readonly base = "",
  ) {}

  samplers(): Promise<SamplerList> {
    return this.json("GET", "/api/v1/samplers");
  }

  models(): Promise<ModelList> {
    return this.json("GET", "/api/v1/models");
  }

  /** The models the server can serve, answered at once while one loads (then `models` is empty). */
  availableModels(): Promise<ModelList> {
    return this.json("GET", "/api/v1/models?wait=false");
  }

  /** Switches the served model; it loads in the background (see availableModels for its state). */
  serveModel(name: string): Promise<ModelList> {
    return this.json("PUT", "/api/v1/models/served", { name });
  }

  /** An A1111 txt2img request with its X/Y/Z plot script: the grid first in `images` (base64 PNG). */
  xyzPlot(body: Record<string, unknown>): Promise<{ images: string[]; info: string }> {
    return this.json("POST", "/sdapi/v1/txt2img", body);
  }

  /** The X/Y/Z plot's axis types, in the order its script_args index them (A1111's txt2img list). */
  async xyzAxisTypes(): Promise<string[]> {
    const scripts = await this.json<{ name: string; is_img2img: boolean; args: { choices: string[] | null }[] }[]>(
      "GET",
      "/sdapi/v1/script-info",
    );
    return scripts.find((s) => s.name === "x/y/z plot" && !s.is_img2img)?.args[0]?.choices ?? [];
  }

  loras(): Promise<LoraInfo[]> {
    return this.json("GET", "/sdapi/v1/loras");
  }

  embeddings(): Promise<EmbeddingList> {
    return this.json("GET", "/sdapi/v1/embeddings");
  }

  /** The pixel upscalers (A1111's GET /sdapi/v1/upscalers): None, Lanczos, Nearest and the learned ones. */
  upscalers(): Promise<UpscalerInfo[]> {
    return this.json("GET", "/sdapi/v1/upscalers");
  }

  /** The hires fix's latent upscalers (A1111's GET /sdapi/v1/latent-upscale-modes). */
  latentUpscaleModes(): Promise<{ name: string }[]> {
    return this.json("GET", "/sdapi/v1/latent-upscale-modes");
  }

  /** The saved prompt styles (A1111's GET /sdapi/v1/prompt-styles: styles.csv in the data folder). */
  promptStyles(): Promise<PromptStyle[]> {
    return this.json("GET", "/sdapi/v1/prompt-styles");
  }

  /** Replaces the saved prompt styles. */
  async savePromptStyles(styles: PromptStyle[]): Promise<void> {
    await this.send("POST", "/sdapi/v1/prompt-styles", styles);
  }

  /** The served ControlNets' titles, from A1111's ControlNet extension's route. */
  async controlNets(): Promise<string[]> {
    return (await this.json<{ model_list: string[] }>("GET", "/controlnet/model_list")).model_list;
  }

  /** A preprocessor's map of one image (the extension's /controlnet/detect), as base64 PNG. */
  async detect(body: {
    controlnet_module: string;
    controlnet_input_images: string[];
    controlnet_processor_res?: number;
  }): Promise<string> {
    return (await this.json<{ images: string[] }>("POST", "/controlnet/detect", body)).images[0]!;
  }

  createJob(request: JobCreateRequest): Promise<JobCreated> {
    return this.json("POST", "/api/v1/jobs", request);
  }

  job(id: string): Promise<JobStatus> {
    return this.json("GET", `/api/v1/jobs/${encodeURIComponent(id)}`);
  }

  async history(limit: number): Promise<JobStatus[]> {
    const list = await this.json<JobList>("GET", `/api/v1/jobs?limit=${limit}`);
    return list.jobs;
  }

  async cancel(id: string): Promise<void> {
    await this.json("DELETE", `/api/v1/jobs/${encodeURIComponent(id)}`);
  }

  /**
   * A URL an <img> can show. Browsers send no Authorization header for image loads, so with a token the image is
   * fetched here and handed over as an object URL.
   */
  imageSrc(url: string): Promise<string> {
    if (this.tokens.get() === null) return Promise.resolve(this.base + url);
    let src = this.blobUrls.get(url);
    if (!src) {
      src = this.send("GET", url).then(async (r) => URL.createObjectURL(await r.blob()));
      // A failure must not stay cached, or a later retry (with a fresh token) could never succeed.
      src.catch(() => this.blobUrls.delete(url));
      this.blobUrls.set(url, src);
    }
    return src;
  }

  /** The image itself, e.g. to put it on the canvas. */
  async imageBlob(url: string): Promise<Blob> {
    return (await this.send("GET", url)).blob();
  }

  /**
   * Follows a job until it ends, calling `onEvent` for each event. The stream is read with fetch rather than
   * EventSource because EventSource cannot send the Authorization header. If the stream breaks before a final
   * event (a proxy timeout, a server restart), the job's status is polled instead, so the caller still learns
   * how it ended. Resolves after the final event; rejects only when the signal aborts.
   */
  async follow(id: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
    try {
      const res = await this.send(
        "GET",
        `/api/v1/jobs/${encodeURIComponent(id)}/events`,
        undefined,
        signal,
        "text/event-stream",
      );
      if (res.body && (await readEvents(res.body, onEvent))) return;
    } catch (e) {
      if (signal.aborted) throw e;
    }
    await this.poll(id, onEvent, signal);
  }

  private async poll(id: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      let job: JobStatus | undefined;
      try {
        job = await this.job(id);
      } catch (e) {
        // A 404 will not heal; anything else (the server restarting) might, so keep trying.
        if (e instanceof ApiError && e.status === 404) {
          onEvent({ event: "error", data: { message: e.message } });
          return;
        }
      }
      if (job) {
        const ended = statusAsEvent(job);
        onEvent(ended);
        if (FINAL.has(ended.event)) return;
      }
      await sleep(1000, signal);
    }
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** One request; a 401 asks for a token and tries again until the user gives one that works or gives up. */
  private async send(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    accept = "application/json",
  ): Promise<Response> {
    for (let reason = ""; ; ) {
      const headers: Record<string, string> = { Accept: accept };
      const token = this.tokens.get();
      if (token !== null) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const res = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      if (res.status === 401) {
        reason = token === null ? "This server needs an access token." : "That token was not accepted.";
        if ((await this.tokens.ask(reason)) === null) throw new ApiError(401, "an access token is needed");
        continue;
      }
      if (!res.ok) throw await errorFrom(res);
      return res;
    }
  }
}

async function errorFrom(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as Partial<ApiErrorBody> & { detail?: unknown };
    if (typeof body.message === "string") return new ApiError(res.status, body.message, body.field);
    // The A1111 routes answer {error, detail}.
    if (typeof body.detail === "string") return new ApiError(res.status, body.detail);
  } catch {
    // Not JSON (a proxy's error page, say): fall through to the status line.
  }
  return new ApiError(
    res.status,
    `${res.status} ${res.statusText || "error"}${text && text.length < 200 ? `: ${text}` : ""}`,
  );
}

/** Parses a text/event-stream body; true when it saw a final event before the stream ended. */
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (e: SseEvent) => void): Promise<boolean> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += decoder.decode(value, { stream: true });
      // Events end with a blank line; the spec allows \r\n, \r or \n as line ends.
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop() ?? "";
      for (const block of blocks) {
        const e = parseBlock(block);
        if (!e) continue;
        onEvent(e);
        if (FINAL.has(e.event)) return true;
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

function parseBlock(block: string): SseEvent | undefined {
  let name = "message";
  const data: string[] = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return undefined;
  try {
    return { event: name, data: JSON.parse(data.join("\n")) } as SseEvent;
  } catch {
    return undefined;
  }
}

/** A polled status expressed as the event the stream would have sent, so callers handle one vocabulary. */
function statusAsEvent(job: JobStatus): SseEvent {
  switch (job.state) {
    case "queued":
      return { event: "queued", data: { position: job.position ?? 0 } };
    case "running":
      return {
        event: "step",
        data: { step: job.progress?.step ?? 0, steps: job.progress?.steps ?? 0, batch: 0, batches: 1 },
      };
    case "done":
      return { event: "done", data: { images: job.images } };
    case "failed":
      return { event: "error", data: { message: job.error ?? "the job failed" } };
    case "cancelled":
      return { event: "cancelled", data: { message: job.error ?? "cancelled" } };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}
