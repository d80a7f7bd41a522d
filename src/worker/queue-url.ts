import type { RedisOptions } from "bullmq";
import { InputError } from "../errors.js";

/** Where the password comes from when the URL carries none (so it stays out of process listings and shell history). */
export const PASSWORD_ENV = "DIFFUSE_REDIS_PASSWORD";

const SHAPE = "redis://[user:password@]host[:port][/db] (rediss:// for TLS)";

/** A Redis server for the BullMQ queue, as `--queue` names it. */
export interface QueueTarget {
  /** The URL with its password left out, for messages and logs. */
  display: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/**
 * Reads `--queue redis://...`: host, port (6379), database number (0), user and password (from the URL, else
 * $DIFFUSE_REDIS_PASSWORD), TLS for rediss://. Anything else is an InputError that names the expected shape.
 */
export function parseQueueUrl(
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): QueueTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InputError(`--queue ${JSON.stringify(redact(text))} is not a URL: expected ${SHAPE}`);
  }
  const display = displayOf(url);
  const bad = (why: string) => new InputError(`--queue ${display}: ${why}; expected ${SHAPE}`);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw bad(`the scheme ${url.protocol.replace(/:$/, "")} is not redis or rediss`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw bad("the host is missing");
  const port = url.port === "" ? 6379 : Number(url.port);
  const dbText = url.pathname.replace(/^\//, "");
  if (dbText !== "" && !/^\d{1,5}$/.test(dbText)) throw bad(`the path /${dbText} is not a database number`);
  if (url.search !== "" || url.hash !== "") throw bad("query strings and fragments are not read");
  const password = url.password !== "" ? decodeURIComponent(url.password) : env[PASSWORD_ENV] || undefined;
  const username = url.username !== "" ? decodeURIComponent(url.username) : undefined;
  return {
    display,
    host,
    port,
    db: dbText === "" ? 0 : Number(dbText),
    username,
    password,
    tls: url.protocol === "rediss:",
  };
}

/** The longest pause between two attempts to reconnect to Redis (each client; they back off 200 ms, 400 ms, ... to it). */
export const RECONNECT_MAX_MS = 2000;

/**
 * Connection options for bullmq's Queue, QueueEvents and Worker. Reconnects forever, at most 2 s apart: a Redis
 * restart costs a few seconds, not the process. `maxRetriesPerRequest: null` is what bullmq requires of the
 * blocking connections of workers and event readers (their commands wait out a reconnect instead of failing).
 * `failFast`, for what answers HTTP requests (bullmq's advice for producers): a command while Redis is away fails
 * at once instead of waiting for it, and the caller falls back (the API server adds the job again later).
 */
export function connectionOptions(t: QueueTarget, opts: { failFast?: boolean } = {}): RedisOptions {
  return {
    ...(opts.failFast ? { enableOfflineQueue: false } : {}),
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username !== undefined ? { username: t.username } : {}),
    ...(t.password !== undefined ? { password: t.password } : {}),
    ...(t.tls ? { tls: { servername: t.host } } : {}),
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(times * 200, RECONNECT_MAX_MS),
  };
}

function displayOf(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password !== "") copy.password = "***";
  return copy.href.replace(/\/$/, "");
}

/** Best effort for text that is not even a URL: whatever sits between a colon and an @ is hidden. */
function redact(text: string): string {
  return text.replace(/:[^:/@]*@/, ":***@");
}
