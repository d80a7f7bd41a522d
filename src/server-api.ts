/**
 * The public API for hosting diffuse, as `diffuse/server`: the HTTP app (`diffuse serve`) and the queue worker
 * (`diffuse worker`). Apart from the library's root (`diffuse`) because they load fastify, the job store's SQLite and
 * bullmq, which a program that only generates images should not pay for at every start.
 */
/** The HTTP server (`diffuse serve`): our API, the AUTOMATIC1111-compatible one and the page, on fastify. */
export { buildApp } from "./server/app.js";
export {
  DEFAULTS as SERVER_DEFAULTS,
  resolveServerConfig,
  type ServerConfig,
  type ServerConfigInput,
} from "./server/config.js";
/** A queue worker (`diffuse worker`): runs the jobs an API server started with --queue puts on Redis. */
export { DEFAULT_LOCK_DURATION_MS, DEFAULT_STALLED_INTERVAL_MS, QueueWorker } from "./worker/queue-worker.js";
export { parseQueueUrl } from "./worker/queue-url.js";
