import type { RedisClient } from "bullmq";
import { KEY_PREFIX } from "./queue-protocol.js";
import type { LoadedModel } from "./messages.js";

/**
 * How a `diffuse worker` makes itself known: one Redis key per worker, rewritten every heartbeat and expiring
 * after three missed ones, so a killed worker disappears by itself. The API server lists them for its model
 * listings (a remote model is described by the worker that loaded it) and for whoever runs the fleet.
 */
export interface WorkerAdvert {
  /** Unique per worker process; bullmq records it on every job the worker processes. */
  name: string;
  host: string;
  pid: number;
  /** The model's name, which names its queue. */
  model: string;
  /** What the worker loaded, once it has. */
  loaded?: LoadedModel;
  /** Why the model could not be loaded: the worker fails its jobs with this reason. */
  loadError?: string;
  /** Where it computes, e.g. "cpu (8 threads)". */
  device: string;
  /** The job it runs now. */
  job: string | null;
  startedAt: string;
}

export const HEARTBEAT_MS = 5000;

const KEY = `${KEY_PREFIX}:workers:`;

export async function publishAdvert(
  client: RedisClient,
  advert: WorkerAdvert,
  heartbeatMs = HEARTBEAT_MS,
): Promise<void> {
  await client.set(KEY + advert.name, JSON.stringify(advert), { PX: heartbeatMs * 3 });
}

export async function withdrawAdvert(client: RedisClient, name: string): Promise<void> {
  await client.del(KEY + name);
}

/** Every worker alive now (its last heartbeat has not expired). */
export async function readAdverts(client: RedisClient): Promise<WorkerAdvert[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await client.scan(cursor, { MATCH: `${KEY}*`, COUNT: 200 });
    keys.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  const adverts: WorkerAdvert[] = [];
  for (const key of keys.sort()) {
    const text = await client.get(key);
    if (text === null) continue; // expired between the scan and the read
    try {
      adverts.push(JSON.parse(text) as WorkerAdvert);
    } catch {
      // Not ours (another program's key under our prefix): not a worker.
    }
  }
  return adverts;
}
