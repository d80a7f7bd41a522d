import type { FastifyInstance, FastifyRequest } from "fastify";
import { HttpError } from "./http-errors.js";

/** Methods that only read: everything else may change state (submit, cancel, interrupt, set options). */
const READ_METHODS = new Set(["GET", "HEAD"]);

/**
 * Refuses cross-site requests to every route that may change state (any method but GET and HEAD).
 *
 * A page on another origin can make the user's browser send "simple" requests to this server, which listens on
 * the user's own machine, without a CORS preflight: a form or a `no-cors` fetch POSTing text/plain,
 * form-encoded or multipart bodies, or no body at all. The answer stays unreadable to that page, but the
 * request still acts (POST /sdapi/v1/interrupt cancels the running job). So:
 *
 * - `Sec-Fetch-Site` (set by browsers, never by page scripts) must be `same-origin` (or `none`: typed by the
 *   user) when present. `same-site` is refused too: another port on localhost is the same site.
 * - Without it (older browsers), `Origin`, when present, must name this server: the host and port the request
 *   was addressed to (`Host`). `Origin: null` (sandboxed frames, file: pages) never matches.
 * - A Content-Type, when present, must be application/json, and a body must have one: this refuses every body
 *   a page can send cross-origin without a preflight, even from browsers that send neither header.
 *
 * Clients that are not browsers (curl, Python, A1111 client libraries) send no Origin and JSON bodies, and the
 * web page sends same-origin JSON, so all of them pass.
 */
export function registerCrossSiteGuard(app: FastifyInstance): void {
  app.addHook("onRequest", async (request) => {
    if (READ_METHODS.has(request.method)) return;
    const refusal = crossSiteRefusal(request);
    if (refusal !== undefined) {
      throw new HttpError(
        403,
        "cross_site",
        `${request.method} refused: ${refusal}. Requests that change state must come from this server's own page or from a client that is not a browser (which sends no Origin header)`,
      );
    }
    const type = request.headers["content-type"];
    if (type === undefined ? hasBody(request) : !isJson(type)) {
      throw new HttpError(
        415,
        "unsupported_media_type",
        `${request.method} refused: the body is ${type === undefined ? "sent without a Content-Type" : JSON.stringify(type)}; this server takes JSON only: send the body with Content-Type: application/json (or send no body)`,
      );
    }
  });
}

/** Why the request is cross-site, or undefined when it is not. */
function crossSiteRefusal(request: FastifyRequest): string | undefined {
  const site = header(request, "sec-fetch-site");
  if (site !== undefined) {
    // The browser's own statement about where the request comes from; a page cannot set or forge it.
    return site === "same-origin" || site === "none"
      ? undefined
      : `the browser says it comes from another site (Sec-Fetch-Site: ${site}), i.e. a cross-site request`;
  }
  const origin = header(request, "origin");
  if (origin === undefined) return undefined;
  const host = header(request, "host");
  const originHost = hostOf(origin);
  if (originHost === undefined || host === undefined || originHost !== normaliseHost(host, origin)) {
    return `it comes from a page on another origin (Origin: ${origin}, but this server was addressed as ${host ?? "(no Host)"}), i.e. a cross-site request`;
  }
  return undefined;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === "string" ? v.trim() : undefined;
}

/** `host[:port]` of an origin, lowercased, default port omitted (as URL does); undefined for "null" or garbage. */
function hostOf(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    return u.protocol === "http:" || u.protocol === "https:" ? u.host : undefined;
  } catch {
    return undefined;
  }
}

/** The Host header as URL would write it for the origin's scheme (lowercase, default port dropped). */
function normaliseHost(host: string, origin: string): string | undefined {
  try {
    const scheme = new URL(origin).protocol;
    return new URL(`${scheme}//${host}`).host;
  } catch {
    return undefined;
  }
}

function isJson(contentType: string): boolean {
  return contentType.split(";")[0]!.trim().toLowerCase() === "application/json";
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers["content-length"];
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}
