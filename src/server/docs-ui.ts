import type { FastifyInstance } from "fastify";
import { PUBLIC_ROUTE } from "./auth.js";

/**
 * Interactive documentation of both APIs at `/docs` (Swagger UI, as A1111's FastAPI serves it there), from the
 * same OpenAPI document as `/api/docs` (given as is: @fastify/swagger's static mode, nothing inferred from the
 * routes). Its page, its files and the document it shows (at /docs/json) load without the token, like the web
 * page: they are the package's public description of the API; the requests tried from it need the token, which
 * its "Authorize" button takes.
 */
export function registerDocsUi(app: FastifyInstance, document: Record<string, unknown>): void {
  void app.register(async (scope) => {
    scope.addHook("onRoute", (route) => {
      route.config = { ...(route.config as object), ...PUBLIC_ROUTE };
    });
    const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([
      import("@fastify/swagger"),
      import("@fastify/swagger-ui"),
    ]);
    await scope.register(swagger, { mode: "static", specification: { document: document as never } });
    await scope.register(swaggerUi, {
      routePrefix: "/docs",
      uiConfig: { docExpansion: "list", deepLinking: true, tryItOutEnabled: false },
    });
  });
}
