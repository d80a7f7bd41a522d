import type { RedisClient } from "bullmq";

/** What bullmq's Queue, QueueEvents, QueueEventsProducer and Worker have in common for closing. */
export interface Closable {
  close(): Promise<void>;
  getBackend(): { client: Promise<RedisClient>; blockingClient: Promise<RedisClient> | undefined };
}

/** How long a close may wait for Redis before the connections are dropped. */
export const CLOSE_WAIT_MS = 1500;

/**
 * Closes a bullmq object so that the process can end even while Redis is away. bullmq's close says goodbye to
 * Redis (QUIT), which waits for a Redis that is not there, or fails and leaves the client reconnecting forever;
 * so it gets CLOSE_WAIT_MS, and then the object's connections are dropped (what it leaves, bullmq recovers: a
 * job's lock expires and another worker runs it; the API server reconciles with Redis when it starts again).
 */
export async function closeBullmq(c: Closable, ms = CLOSE_WAIT_MS): Promise<void> {
  await within(
    c.close().catch(() => undefined),
    ms,
  );
  const backend = c.getBackend();
  for (const pending of [backend.client, backend.blockingClient]) {
    // A client that never connected is still pending: there is nothing to drop then.
    const client =
      pending &&
      (await within(
        pending.catch(() => undefined),
        0,
      ));
    if (client) {
      // ioredis reports the failed reconnects of a dropped client as unhandled errors otherwise.
      client.on("error", () => undefined);
      client.disconnect();
    }
  }
}

/** `p`'s value, or undefined when it takes longer than `ms`. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
