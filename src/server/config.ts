import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { embeddedControlNetDir, isDefaultModel } from "../default-model.js";
import { InputError } from "../errors.js";
import type { ListOptions } from "../hub/list-models.js";
import type { LoadOptions } from "../pipeline/load-pipeline.js";
import type { UpscalerSearch } from "../upscale/upscaler-folders.js";
import type { QueueTarget } from "../worker/queue-url.js";

/** Everything the server needs to start, resolved; tests build one directly and pass port 0. */
export interface ServerConfig {
  host: string;
  port: number;
  /**
   * A .safetensors checkpoint or a diffusers folder. With `queue`, the workers load it and this names it: its file
   * or folder name (without .safetensors) names the model's queue.
   */
  modelPath: string;
  /** The BullMQ queue on Redis that `diffuse worker` processes take the jobs from; absent: the embedded queue. */
  queue?: QueueTarget;
  /** Extra options for loading it (threads, compile cache folder, ...). */
  loadOptions?: LoadOptions;
  /** SQLite database and image files live here. */
  dataDir: string;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest request body in bytes; larger ones get 413. */
  bodyLimit: number;
  /** The built web page (web/dist); a plain fallback page is served when it is missing. */
  webRoot: string;
  /** Minimum interval between live previews of one job, in ms (each costs a PNG encode). */
  previewIntervalMs: number;
  /** How often an idle SSE stream gets a comment line, so proxies keep it open. */
  sseKeepAliveMs: number;
  /** Request log lines (fastify's logger); off in tests. */
  log: boolean;
  /** Where log lines go when `log` is on: stdout when absent (tests pass a collector). */
  logStream?: { write(line: string): unknown };
  /**
   * The most work one generation request may ask for, in megapixel-steps (see work-budget.ts); larger ones get
   * 422 on both APIs.
   */
  workBudget: number;
  /**
   * The most memory one generation may need by its estimate (bytes; generation-estimate.ts), larger ones get 422 on
   * both APIs; undefined: what the machine has free when the request comes (machineMemoryLimit).
   */
  maxMemory?: number;
  /**
   * Folders of ControlNets requests may name (A1111's ControlNet extension's models folder); serving the embedded
   * model, the folder of the ControlNets shipped beside it comes first.
   */
  controlnetDirs?: string[];
  /**
   * Where the checkpoints clients may switch to are found (as `diffuse models` finds them; default: the store and
   * Hugging Face cache of the environment, DIFFUSE_HOME/config.json's folders, tools installed in the usual places).
   */
  models?: ListOptions;
  /**
   * Whether clients may stop the server (A1111's POST /sdapi/v1/server-stop and server-kill, `serve
   * --api-server-stop` as A1111's flag); off, those routes answer 403.
   */
  apiServerStop?: boolean;
}

/**
 * Where the server's upscalers are found: loadOptions.upscalerSearch when given, else the model folders of `models`
 * (A1111's models/ESRGAN under an A1111 --models-dir, and so on). One answer for /sdapi/v1/upscalers, the check of
 * a request's hr_upscaler and the threads that run the hires fix.
 */
export function upscalerSearchOf(config: ServerConfig): UpscalerSearch {
  const given = config.loadOptions?.upscalerSearch;
  if (given) return given;
  const m = config.models ?? {};
  return { modelsDirs: m.modelsDirs, searchDefaults: m.searchDefaults, userHome: m.userHome, home: m.home };
}

/** src/server and dist/server both sit two levels below the package root. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL("../../web/dist", import.meta.url));

export const DEFAULTS = {
  host: "127.0.0.1",
  port: 7860,
  dataDir: "diffuse-data",
  bodyLimit: 32 * 1024 * 1024,
  previewIntervalMs: 250,
  sseKeepAliveMs: 15_000,
  /**
   * Admits what people normally ask for with room to spare: 1024x1024 x 50 steps x 8 images is 419, 512x512 x
   * 50 steps x 8 x 16 images 1,678; refuses the extremes the per-field limits allow (2048x2048 x 150 steps x
   * 8 x 16 images is 80,531).
   */
  workBudget: 2000,
} as const;

export interface ServerConfigInput {
  host?: string;
  port?: number;
  modelPath: string;
  queue?: QueueTarget;
  loadOptions?: LoadOptions;
  dataDir?: string;
  token?: string;
  bodyLimit?: number;
  webRoot?: string;
  previewIntervalMs?: number;
  sseKeepAliveMs?: number;
  log?: boolean;
  workBudget?: number;
  maxMemory?: number;
  controlnetDirs?: string[];
  models?: ListOptions;
  apiServerStop?: boolean;
}

/**
 * Fills defaults and refuses unsafe setups: the server runs models and writes files for whoever can reach it,
 * so anything beyond loopback needs a token.
 */
export function resolveServerConfig(input: ServerConfigInput): ServerConfig {
  const host = input.host ?? DEFAULTS.host;
  const token = input.token === "" ? undefined : input.token;
  if (!isLoopback(host) && token === undefined) {
    throw new InputError(
      `refusing to listen on ${host} without a token: anyone who can reach it could run generations and read your images; ` +
        "pass --token SECRET (or set DIFFUSE_TOKEN), or bind to 127.0.0.1",
    );
  }
  if (token !== undefined && token.length < 8) {
    throw new InputError(
      "the token is shorter than 8 characters: use a longer random secret, e.g. from `openssl rand -hex 16`",
    );
  }
  const port = input.port ?? DEFAULTS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InputError(`port ${port} is invalid: use an integer from 0 to 65535`);
  const workBudget = input.workBudget ?? DEFAULTS.workBudget;
  if (!Number.isFinite(workBudget) || workBudget <= 0) {
    throw new InputError(
      `work budget ${workBudget} is invalid: use a positive number of megapixel-steps per request (default ${DEFAULTS.workBudget})`,
    );
  }
  if (input.maxMemory !== undefined && !(input.maxMemory > 0))
    throw new InputError(`max memory ${input.maxMemory} is invalid: use a positive number of bytes`);
  // With a queue, the model lives on the workers' machines: here it is only a name.
  if (input.queue === undefined && !existsSync(input.modelPath)) {
    throw new InputError(
      `model not found: ${input.modelPath}; pass --model with a .safetensors file or a diffusers folder`,
    );
  }
  return {
    host,
    port,
    modelPath: resolve(input.modelPath),
    ...(input.queue !== undefined ? { queue: input.queue } : {}),
    loadOptions: input.loadOptions,
    dataDir: resolve(input.dataDir ?? DEFAULTS.dataDir),
    token,
    bodyLimit: input.bodyLimit ?? DEFAULTS.bodyLimit,
    webRoot: resolve(input.webRoot ?? DEFAULT_WEB_ROOT),
    previewIntervalMs: input.previewIntervalMs ?? DEFAULTS.previewIntervalMs,
    sseKeepAliveMs: input.sseKeepAliveMs ?? DEFAULTS.sseKeepAliveMs,
    log: input.log ?? false,
    workBudget,
    ...(input.maxMemory !== undefined ? { maxMemory: input.maxMemory } : {}),
    ...controlnetDirsOf(input),
    ...(input.models ? { models: input.models } : {}),
    ...(input.apiServerStop ? { apiServerStop: true } : {}),
  };
}

/** The given ControlNet folders, after the embedded model's own when it is the one served. */
function controlnetDirsOf(input: ServerConfigInput): { controlnetDirs?: string[] } {
  const shipped = isDefaultModel(input.modelPath) ? [embeddedControlNetDir()] : [];
  const dirs = [...new Set([...shipped, ...(input.controlnetDirs ?? []).map((d) => resolve(d))])];
  return dirs.length ? { controlnetDirs: dirs } : {};
}

/** Addresses only this machine can reach. "localhost" counts: it resolves to loopback unless the system is misconfigured. */
export function isLoopback(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || h === "::ffff:127.0.0.1";
}
