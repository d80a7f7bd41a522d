import type { FastifyRequest, FastifyServerOptions } from "fastify";
import type { ServerConfig } from "./config.js";

/** Query parameters that carry secrets (compared decoded and case-insensitively, as a client might spell them). */
const SECRET_PARAMS = new Set(["access_token"]);
const REDACTED = "[redacted]";

/**
 * fastify's logger for `--log`: its request serializer with the URL's secrets redacted. A token passed as
 * `?access_token=` (EventSource and first page loads cannot send headers) would otherwise be written in the
 * clear to every log line of the request. Headers are not logged; should a serializer ever add them, the
 * Authorization and Cookie headers are censored too.
 */
export function loggerOptions(config: Pick<ServerConfig, "log" | "logStream">): FastifyServerOptions["logger"] {
  if (!config.log) return false;
  return {
    level: "info",
    ...(config.logStream ? { stream: config.logStream } : {}),
    serializers: {
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: redactUrl(request.url),
        version: firstValue(request.headers?.["accept-version"]),
        host: request.host,
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort,
      }),
    },
    redact: { paths: ["req.headers.authorization", "req.headers.cookie"], censor: REDACTED },
  };
}

/**
 * The URL with the value of every secret query parameter replaced. Keys are decoded before the comparison, as
 * the query parser that reads the token decodes them (`access%5Ftoken=` is `access_token=` to it).
 */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      if (eq < 0) return pair;
      const key = pair.slice(0, eq);
      return SECRET_PARAMS.has(decodeKey(key).toLowerCase()) ? `${key}=${REDACTED}` : pair;
    })
    .join("&");
  return `${url.slice(0, q + 1)}${query}`;
}

function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, " "));
  } catch {
    return key;
  }
}

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
