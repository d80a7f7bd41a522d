import { PromptPolicy } from "../responsible/prompt-policy.js";
import Fastify, { type FastifyInstance } from "fastify";
import { registerA1111Routes } from "./a1111.js";
import { registerAuth } from "./auth.js";
import { registerCatalogRoutes } from "./catalog.js";
import { registerControlNetRoutes } from "./controlnet-routes.js";
import { type ServerConfig, upscalerSearchOf } from "./config.js";
import type { ServerContext, StopRequest } from "./context.js";
import { registerCrossSiteGuard } from "./cross-site.js";
import { JobEvents } from "./events.js";
import { apiErrorHandler } from "./http-errors.js";
import { ImageFiles } from "./image-files.js";
import { imageUrl, registerImageRoutes } from "./images.js";
import { JobViews } from "./job-view.js";
import { registerJsonBodyParser } from "./json-body.js";
import { registerJobRoutes } from "./jobs.js";
import { modelNameFor } from "../worker/model-host.js";
import { Checkpoints } from "./checkpoints.js";
import { registerOpenApiRoute } from "./openapi.js";
import { EmbeddedQueue } from "./embedded-queue.js";
import type { QueueOptions } from "./job-queue.js";
import { RedisQueue } from "./redis-queue.js";
import { ServedModels } from "./served-models.js";
import { UpscalerRegistry } from "../upscale/upscalers.js";
import { loggerOptions } from "./request-log.js";
import { registerStaticRoutes } from "./static.js";
import { JobStore, type RecoveryReport } from "./store.js";
import { vaeFolders } from "./vae-files.js";

/**
 * `Server-Timing: app;dur=<ms>` on every answer: the time spent in this server, so a client can tell a slow
 * server from a slow network or a busy client (`npm run bench:server` measures answer times under load).
 */
function registerServerTiming(fastify: FastifyInstance): void {
  const started = new WeakMap<object, number>();
  fastify.addHook("onRequest", async (request) => {
    started.set(request, performance.now());
  });
  fastify.addHook("onSend", async (request, reply) => {
    const t = started.get(request);
    if (t !== undefined) void reply.header("server-timing", `app;dur=${(performance.now() - t).toFixed(1)}`);
  });
}

export interface App {
  fastify: FastifyInstance;
  context: ServerContext;
  /** What crash recovery found when the data folder was opened. */
  recovery: RecoveryReport;
  /**
   * Resolves when a client asked the server to stop (POST /sdapi/v1/server-stop or server-kill, allowed by
   * `apiServerStop`): whoever runs the server then closes it, as it does on SIGTERM.
   */
  stopRequested: Promise<StopRequest>;
  /** Stops the queue (embedded: a running job goes back to the queue), closes streams, the database and the model. */
  close(): Promise<void>;
}

/** Parts a caller may supply instead of the defaults built from the config (tests inject disk faults here). */
export interface AppParts {
  /** The image folder; must be under config.dataDir. */
  files?: ImageFiles;
}

/**
 * Builds a server from its config without listening, so tests run it in-process (`fastify.inject` or
 * `listen({ port: 0 })`) and the CLI runs the same thing on a real port. Opening the data folder checks its
 * database (a damaged or foreign one is refused with a StoreError) and recovers from a previous crash before
 * the queue starts.
 */
export async function buildApp(config: ServerConfig, parts: AppParts = {}): Promise<App> {
  const files = parts.files ?? new ImageFiles(config.dataDir);
  const store = JobStore.open(config.dataDir, { images: files });
  try {
    return await startApp(config, store, files);
  } catch (e) {
    store.close();
    throw e;
  }
}

async function startApp(config: ServerConfig, store: JobStore, files: ImageFiles): Promise<App> {
  files.removePartials();
  // With the BullMQ backend a job found running may still be running on its worker: the queue reconciles it
  // with Redis instead.
  const recovery = config.queue ? { requeued: [], failed: [] } : store.recover(new Date().toISOString());
  const events = new JobEvents();
  const fastify = Fastify({
    logger: loggerOptions(config),
    bodyLimit: config.bodyLimit,
    // SSE streams never end by themselves: close must not wait for them.
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 500 },
  });
  const log = (message: string) =>
    config.log ? fastify.log.warn(message) : process.stderr.write(`diffuse serve: ${message}\n`);
  const promptPolicy = config.loadOptions?.promptPolicy
    ? await PromptPolicy.load(config.loadOptions.promptPolicy)
    : undefined;
  const queueOptions: QueueOptions = {
    previewIntervalMs: config.previewIntervalMs,
    imageUrl,
    log,
    promptPolicy,
    controlnetDirs: config.controlnetDirs,
    vaeDirs: vaeFolders(config.models),
  };
  const started = { name: modelNameFor(config.modelPath), path: config.modelPath };
  // The generating threads search the same folders as the registry, so hr_upscaler's names are the listed ones.
  const upscalerSearch = upscalerSearchOf(config);
  const upscalers = new UpscalerRegistry(upscalerSearch, { threads: config.loadOptions?.threads });
  const loadOptions = { ...config.loadOptions, upscalerSearch };
  const embedded = config.queue
    ? undefined
    : new EmbeddedQueue(store, files, events, new ServedModels(started, loadOptions, log), queueOptions);
  const queue =
    embedded ?? new RedisQueue(store, files, events, started.name, { ...queueOptions, target: config.queue! });
  const model = queue.model;
  // With --queue the workers load the models: this server names the one it sends jobs to, and knows no others.
  const checkpoints = new Checkpoints(
    started,
    embedded
      ? { ...config.models, hashCacheDir: config.models?.hashCacheDir ?? config.loadOptions?.cacheDir, onStatus: log }
      : undefined,
  );
  let requestStop: (how: StopRequest) => void = () => undefined;
  const stopRequested = new Promise<StopRequest>((resolve) => (requestStop = resolve));
  const context: ServerContext = {
    config,
    store,
    files,
    events,
    model,
    queue,
    checkpoints,
    views: new JobViews(store, queue),
    requestStop: (how) => requestStop(how),
    upscalers,
  };

  fastify.setErrorHandler(apiErrorHandler);
  registerJsonBodyParser(fastify);
  registerServerTiming(fastify);
  registerAuth(fastify, config);
  registerCrossSiteGuard(fastify);
  registerJobRoutes(fastify, context);
  registerImageRoutes(fastify, context);
  registerCatalogRoutes(fastify, context);
  registerOpenApiRoute(fastify, { tokenRequired: config.token !== undefined });
  registerA1111Routes(fastify, context);
  registerControlNetRoutes(fastify, context);
  registerStaticRoutes(fastify, context);

  for (const key of store.unreadableOptions()) {
    log(
      `A1111 option "${key}" in the data folder cannot be read back (not JSON, or nested deeper than the API now accepts, as an older version could store it); it is ignored until set again with POST /sdapi/v1/options`,
    );
  }
  const waiting = store.queuedForOtherModels(model.name);
  if (embedded && waiting.length) {
    // Jobs sent to another known model before a restart (a switch, or a job that named it) still run, in their turn.
    void adoptWaitingJobs(embedded, checkpoints, waiting, log);
  } else {
    for (const { model: other, count } of waiting)
      log(`${count} queued job(s) wait for model "${other}"; they run when the server is started with that model`);
  }
  model.preload();
  queue.start();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await queue.stop();
      events.closeAllStreams();
      await fastify.close();
      store.close();
      await model.close();
      await upscalers.close();
    })());
  return { fastify, context, recovery, stopRequested, close };
}

async function adoptWaitingJobs(
  queue: EmbeddedQueue,
  checkpoints: Checkpoints,
  waiting: { model: string; count: number }[],
  log: (m: string) => void,
): Promise<void> {
  let known: Awaited<ReturnType<Checkpoints["list"]>> = [];
  try {
    known = await checkpoints.list();
  } catch (e) {
    log(`the model store could not be read (${(e as Error)?.message ?? String(e)})`);
  }
  for (const { model: other, count } of waiting) {
    const found = known.find((c) => c.name === other);
    if (found) {
      log(`${count} queued job(s) for model "${other}" run on it in their turn`);
      queue.adopt(found);
    } else {
      log(
        `${count} queued job(s) wait for model "${other}", which the model store does not list; they run when it is served (diffuse models lists what it finds)`,
      );
    }
  }
}
