import { createReadStream, existsSync, statSync } from "node:fs";
import { extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { FastifyInstance } from "fastify";
import { PUBLIC_ROUTE } from "./auth.js";
import type { ServerContext } from "./context.js";
import { HttpError } from "./http-errors.js";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".gif": "image/gif",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
};

export const FALLBACK_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffuse</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>diffuse</h1>
<p>web page not built: run npm run build:web (then reload this page)</p>
<p>The HTTP API works without it: see <a href="/api/docs">/api/docs</a> (OpenAPI) and the AUTOMATIC1111-compatible <code>/sdapi/v1/*</code>.</p>
</body></html>
`;

/**
 * The web page (the Vite build in web/dist) at `/`. Paths are resolved inside that folder and refused when
 * they would leave it; unknown paths without an extension get index.html so the page can route itself.
 * Unmatched /api and /sdapi paths are JSON 404s, never HTML. The only public route: the page loads without the
 * token (see auth.ts).
 */
export function registerStaticRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const root = ctx.config.webRoot;

  app.get("/*", { config: PUBLIC_ROUTE }, async (request, reply) => {
    const path = (request.params as { "*": string })["*"] ?? "";
    if (/^(api|sdapi)(\/|$)/.test(path)) throw new HttpError(404, "not_found", `no route GET /${path}; see /api/docs`);
    const index = join(root, "index.html");
    if (!existsSync(index)) return reply.type(TYPES[".html"]!).header("cache-control", "no-cache").send(FALLBACK_PAGE);
    const file = resolveInside(root, path);
    if (file === undefined) throw new HttpError(400, "invalid_path", "the path leaves the web folder");
    const target = isFile(file) ? file : extname(path) === "" ? index : undefined;
    if (!target) throw new HttpError(404, "not_found", `no file /${path}`);
    // Vite fingerprints everything under assets/: those never change under one name.
    const immutable = relative(root, target).startsWith(`assets${sep}`);
    return reply
      .type(TYPES[extname(target).toLowerCase()] ?? "application/octet-stream")
      .header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache")
      .header("x-content-type-options", "nosniff")
      .send(createReadStream(target));
  });

  app.setNotFoundHandler(async (request) => {
    throw new HttpError(404, "not_found", `no route ${request.method} ${request.url.split("?")[0]}; see /api/docs`);
  });
}

/** The file for a URL path inside root, or undefined when the path (after decoding) would step outside it. */
export function resolveInside(root: string, urlPath: string): string | undefined {
  if (urlPath.includes("\0") || urlPath.includes("\\")) return undefined;
  const full = resolve(root, `.${urlPath.startsWith("/") ? "" : "/"}${urlPath}`);
  const rel = relative(root, full);
  if (rel === "") return full;
  if (rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return full;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
