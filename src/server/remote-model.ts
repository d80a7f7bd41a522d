import type { RedisClient } from "bullmq";
import { InputError } from "../errors.js";
import type { ModelDescription } from "../worker/model-host.js";
import { readAdverts, type WorkerAdvert } from "../worker/worker-registry.js";
import type { ServedModel } from "./job-queue.js";

/** How old the list of workers may be when a request reads it. */
const FRESH_MS = 1000;
/** How long a request waits for workers that are loading the model (building its graphs takes minutes the first time). */
const LOAD_WAIT_MS = 10 * 60_000;

/**
 * The model as the queue's workers describe it: the API server of a BullMQ deployment loads no model itself (it
 * may not even have the file); each `diffuse worker` advertises what it loaded (name, hash, family, defaults,
 * refiner) and on what device, and this reads those adverts.
 */
export class RemoteModel implements ServedModel {
  readonly path: string;
  private adverts: WorkerAdvert[] = [];
  private readAt = -Infinity;
  private everRead = false;
  private reading: Promise<WorkerAdvert[]> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly name: string,
    private readonly client: () => Promise<RedisClient>,
    private readonly queueDisplay: string,
  ) {
    this.path = `${name} (served by the workers of ${queueDisplay})`;
    // Kept fresh in the background, for `isLoaded`, which must answer at once.
    this.timer = setInterval(() => void this.workers().catch(() => undefined), 2000);
    this.timer.unref();
  }

  get isLoaded(): boolean {
    return this.adverts.some((a) => a.model === this.name && a.loaded !== undefined);
  }

  preload(): void {
    void this.workers().catch(() => undefined);
  }

  /**
   * The workers alive now (all models), read at most FRESH_MS ago. While Redis cannot be reached, the last list
   * read stands in (requests go on being accepted; the queue adds their jobs once it is back).
   */
  async workers(): Promise<WorkerAdvert[]> {
    if (performance.now() - this.readAt < FRESH_MS) return this.adverts;
    this.reading ??= (async () => {
      try {
        this.adverts = await readAdverts(await this.client());
        this.readAt = performance.now();
        this.everRead = true;
        return this.adverts;
      } catch (e) {
        if (this.everRead) return this.adverts;
        throw new InputError(
          `the queue at ${this.queueDisplay} cannot be reached (${(e as Error)?.message ?? String(e)}), so no worker is known yet`,
        );
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  /**
   * What the first worker that loaded the model says of it. While workers are still loading it this waits for
   * them, as the embedded server waits for its own load; with none, or none that could, it says so at once.
   */
  async describe(): Promise<ModelDescription> {
    const deadline = performance.now() + LOAD_WAIT_MS;
    for (;;) {
      const mine = (await this.workers()).filter((a) => a.model === this.name);
      const loaded = mine.find((a) => a.loaded !== undefined);
      if (loaded) return { ...loaded.loaded!, name: this.name };
      const failed = mine.find((a) => a.loadError !== undefined);
      if (failed) throw new InputError(`worker ${failed.name} could not load it: ${failed.loadError}`);
      if (mine.length === 0) {
        throw new InputError(
          `no worker serves it yet: start one with diffuse worker --queue ${this.queueDisplay} --model PATH (a checkpoint or folder named ${this.name})`,
        );
      }
      if (performance.now() > deadline)
        throw new InputError(`its ${mine.length === 1 ? "worker is" : "workers are"} still loading it`);
      await new Promise((r) => setTimeout(r, FRESH_MS));
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
