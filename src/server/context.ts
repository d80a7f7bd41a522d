import type { Checkpoints } from "./checkpoints.js";
import type { ServerConfig } from "./config.js";
import type { JobEvents } from "./events.js";
import type { ImageFiles } from "./image-files.js";
import type { JobViews } from "./job-view.js";
import type { JobQueue, ServedModel } from "./job-queue.js";
import type { UpscalerRegistry } from "../upscale/upscalers.js";
import type { JobStore } from "./store.js";

/** How a client asked the server to end (A1111's POST /sdapi/v1/server-stop or server-kill). */
export type StopRequest = "stop" | "kill";

/** The parts of one server instance, handed to each group of routes (no module-level state anywhere). */
export interface ServerContext {
  config: ServerConfig;
  store: JobStore;
  files: ImageFiles;
  events: JobEvents;
  model: ServedModel;
  queue: JobQueue;
  /** The checkpoints the model store knows, which clients may switch to or name per job. */
  checkpoints: Checkpoints;
  views: JobViews;
  /** Asks whoever runs the server to stop it (A1111's server-stop and server-kill; see App.stopRequested). */
  requestStop: (how: StopRequest) => void;
  /**
   * The upscalers by name (/sdapi/v1/upscalers, the extras routes), whose model files the hires fix may name too:
   * the generating threads find the same files from the same search options (ServerConfig's upscalerSearch).
   */
  upscalers: UpscalerRegistry;
}
