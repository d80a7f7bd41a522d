import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { isLoopback, type ServerConfig } from "./config.js";
import { HttpError } from "./http-errors.js";

/**
 * Access control for every route, static page included.
 *
 * With a token: `Authorization: Bearer <token>`, or for GET requests `?access_token=<token>` (RFC 6750 §2.3),
 * because a browser's EventSource and a first page load cannot set headers.
 *
 * The page's own files (web/dist: public code, shipped in the package) load without a token, so a browser can
 * show the page and let it ask for the token; everything under /api and /sdapi needs it.
 *
 * Which is which is decided on the route the router chose for the request, not on the request target as sent:
 * the router strips an absolute-form target's scheme and host (`GET http://x/api/v1/jobs`), decodes
 * percent-escapes and takes `*`, so any test on the raw target is a second parser that can disagree with it.
 * Only routes registered with `config: PUBLIC_ROUTE` are public; every other route, and a request no route
 * matched, needs the token.
 *
 * Without one (loopback only): the Host header must name a loopback address too. Otherwise any web page the
 * user visits could reach the server through DNS rebinding (a hostile name resolving to 127.0.0.1).
 */
export function registerAuth(app: FastifyInstance, config: ServerConfig): void {
  const token = config.token;
  app.addHook("onRequest", async (request, reply) => {
    if (token === undefined) {
      if (!isLoopback(request.hostname) && request.hostname !== config.host) {
        throw new HttpError(
          403,
          "forbidden_host",
          `requests to this server must be addressed to 127.0.0.1 or localhost, not ${JSON.stringify(request.hostname)}; ` +
            "to serve other names, start it with --host and --token",
        );
      }
      return;
    }
    if (isPublic(request)) return;
    reply.header("www-authenticate", 'Bearer realm="diffuse"');
    const presented =
      bearerToken(request) ?? (request.method === "GET" || request.method === "HEAD" ? queryToken(request) : undefined);
    if (presented === undefined) {
      throw unauthorized(
        "this server needs a token: send the header Authorization: Bearer <token> (the --token or DIFFUSE_TOKEN the server was started with)",
      );
    }
    if (!sameSecret(presented, token))
      throw unauthorized("the token does not match the one the server was started with");
    reply.removeHeader("www-authenticate");
  });
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Answers without the token (the page's own files); see registerAuth. */
    public?: boolean;
  }
}

/** The route config that makes a route public. */
export const PUBLIC_ROUTE = { public: true } as const;

/** A path that names the APIs, after leading slashes, in any case, ended by a slash, `;` or nothing. */
const API_PATH = /^[/\\]*(api|sdapi)([/\\;]|$)/i;

function isPublic(request: FastifyRequest): boolean {
  if (request.routeOptions.config?.public !== true) return false;
  // The public route is the page's catch-all: the part of the path its wildcard matched (as the router decoded
  // it) must not name the APIs in any spelling a proxy or browser would normalise into them (`/API`, `//api`,
  // `/x/../api`, `/%2e%2e/api`): those get the token check too, even though the router would not run an API
  // route for them.
  const rest = (request.params as Record<string, unknown> | undefined)?.["*"];
  if (typeof rest !== "string") return true;
  return !API_PATH.test(rest) && !API_PATH.test(normalisedPath(rest));
}

/** Dot segments resolved and percent-escapes decoded, as a URL parser would; "" when it cannot be parsed. */
function normalisedPath(rest: string): string {
  try {
    return decodeURIComponent(new URL(`http://h/${rest}`).pathname);
  } catch {
    return "";
  }
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, "unauthorized", message);
}

function bearerToken(request: FastifyRequest): string | undefined {
  const h = request.headers.authorization;
  if (typeof h !== "string") return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

function queryToken(request: FastifyRequest): string | undefined {
  const q = request.query as Record<string, unknown> | undefined;
  const v = q?.["access_token"];
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/** Compares digests, so the time taken says nothing about how much of the token was right (or its length). */
function sameSecret(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}
