import type { RedisClient } from "bullmq";
import { InputError } from "../errors.js";
import type { ModelDescription } from "../worker/model-host.js";
import { readAdverts, type WorkerAdvert } from "../worker/worker-registry.js";
import type { ServedModel } from "./job-queue.js";

/** How old the list of workers may be when a request reads it. */
const FRESH_MS = 1000;

/**
 * The model as the queue's workers describe it: the API server of a BullMQ deployment loads no model itself (it
 * may not even have the file); each `diffuse worker` advertises what it loaded (name, hash, family, defaults,
 * refiner) and on what device, and this reads those adverts.
 */
export class RemoteModel implements ServedModel {
  readonly path: string;
  private adverts: WorkerAdvert[] = [];
  private readAt = -Infinity;
  private reading: Promise<WorkerAdvert[]> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly name: string,
    private readonly client: () => Promise<RedisClient>,
    private readonly queueDisplay: string,
  ) {
    this.path = `${name} (served by the workers of ${queueDisplay})`;
    // Kept fresh in the background, for `isLoaded`, which must answer at once.
    this.timer = setInterval(() => void this.workers().catch(() => undefined), 5000);
    this.timer.unref();
  }

  get isLoaded(): boolean {
    return this.adverts.some((a) => a.model === this.name && a.loaded !== undefined);
  }

  preload(): void {
    void this.workers().catch(() => undefined);
  }

  /** The workers alive now (all models), read at most FRESH_MS ago. */
  async workers(): Promise<WorkerAdvert[]> {
    if (performance.now() - this.readAt < FRESH_MS) return this.adverts;
    this.reading ??= (async () => {
      try {
        this.adverts = await readAdverts(await this.client());
        this.readAt = performance.now();
        return this.adverts;
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  async describe(): Promise<ModelDescription> {
    const mine = (await this.workers()).filter((a) => a.model === this.name);
    const loaded = mine.find((a) => a.loaded !== undefined);
    if (loaded) return { ...loaded.loaded!, name: this.name };
    const failed = mine.find((a) => a.loadError !== undefined);
    if (failed) throw new InputError(`worker ${failed.name} could not load it: ${failed.loadError}`);
    throw new InputError(
      mine.length > 0
        ? `its ${mine.length === 1 ? "worker is" : "workers are"} still loading it`
        : `no worker serves it yet: start one with diffuse worker --queue ${this.queueDisplay} --model PATH (a checkpoint or folder named ${this.name})`,
    );
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
