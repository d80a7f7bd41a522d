/**
 * The token check against every route of both APIs, whatever form the request target takes. The routes come
 * from fastify itself (printRoutes), so a route added later is covered without editing this file. Requests go
 * out on raw sockets: absolute-form targets (`GET http://x/api/v1/jobs HTTP/1.1`), `*`, `//api` and the like
 * cannot be sent with fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, routesOf, startServer, tempDir, type Route, type TestServer } from "./harness.js";

const TOKEN = "s3cret-token-for-tests";
const SOME_ID = "0b9c2a3e-7f61-4d2a-9a53-2f7d0c1e4b88";

/** A concrete path for a route pattern: ids filled in. */
function concrete(pattern: string): string {
  return pattern.replace(/:[a-z]+/g, SOME_ID);
}

/** The same path written every way a client (or an attacker) might: all of them must meet the token check. */
function targetsFor(path: string, port: string): string[] {
  const first = path.charCodeAt(1).toString(16);
  const encodedFirst = `/%${first}${path.slice(2)}`;
  return [
    path,
    `http://x${path}`,
    `HTTP://X${path}`,
    `https://x${path}`,
    `http://127.0.0.1:${port}${path}`,
    `http://user:pw@x${path}`,
    `http://x${encodedFirst}`,
    `http://x:1${path}?a=b`,
    `/${path}`,
    `//${path}`,
    encodedFirst,
    path.toUpperCase(),
    `${path};x=1`,
    `${path}/`,
    `${path}?access_token=wrong`,
    `${path}#fragment`,
    path.replace(/\/v1\//, "%2Fv1%2F"),
    path.replace(/\/v1\//, "/./v1/"),
    `/x/..${path}`,
  ];
}

const BODY = '{"steps": -1}';

describe("the token check on every route, for every form of request target", () => {
  let s: TestServer;
  let port: string;
  let routes: Route[];
  const notAModel = tempDir("diffuse-not-a-model-");

  beforeAll(async () => {
    // No model behind it: a request that got through would answer 4xx/503 without generating anything.
    s = await startServer({ token: TOKEN }, { modelPath: notAModel.path });
    port = new URL(s.base).port;
    routes = routesOf(s.app.fastify);
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  const apiRoutes = () => routes.filter((r) => /^\/(api|sdapi)\//.test(r.path));

  it("finds the routes of both APIs in fastify's own table", () => {
    const listed = routes.flatMap((r) => r.methods.map((m) => `${m} ${r.path}`));
    for (const expected of [
      "POST /api/v1/jobs",
      "GET /api/v1/jobs/:id",
      "DELETE /api/v1/jobs/:id",
      "GET /api/v1/jobs/:id/events",
      "GET /api/v1/images/:id",
      "GET /api/docs",
      "POST /sdapi/v1/txt2img",
      "POST /sdapi/v1/interrupt",
      "GET /sdapi/v1/options",
      "POST /sdapi/v1/options",
      "GET /*",
    ]) {
      expect(listed).toContain(expected);
    }
    expect(apiRoutes().length).toBeGreaterThanOrEqual(17);
  });

  it("answers 401 without the token to every API route, in origin-form, absolute-form and odd forms", async () => {
    const answered: string[] = [];
    for (const route of apiRoutes()) {
      for (const method of route.methods) {
        for (const target of targetsFor(concrete(route.path), port)) {
          const r = await rawRequest(
            s.base,
            method,
            target,
            method === "POST" ? { "content-type": "application/json" } : {},
            method === "POST" ? BODY : undefined,
          );
          // 400 is fastify refusing a target it cannot route at all (before any route runs); anything else is an answer.
          if (r.status !== 401 && r.status !== 400)
            answered.push(`${method} ${target} -> ${r.status} ${r.body.slice(0, 80)}`);
          if (r.status === 400)
            expect(r.body, `${method} ${target}`).toMatch(/FST_ERR_BAD_URL|invalid_path|not a valid url/i);
        }
      }
    }
    expect(answered).toEqual([]);
  });

  it("also refuses `*` and absolute-form targets with no path or only a query", async () => {
    for (const target of ["*", "http://x", "http://x?/api/v1/jobs", `http://127.0.0.1:${port}?access_token=wrong`]) {
      for (const method of ["GET", "POST", "DELETE"]) {
        const r = await rawRequest(s.base, method, target, {}, undefined);
        // These reach the page route at most: never JSON from an API route.
        expect(r.body, `${method} ${target}`).not.toMatch(/"jobs"|"samplers"|"sd_model_checkpoint"|"progress"/);
        if (method !== "GET") expect(r.status, `${method} ${target}`).not.toBe(200);
      }
    }
  });

  it("lets the same targets through with the token, so the 401s above came from the check and not from a bad target", async () => {
    const blocked: string[] = [];
    for (const route of apiRoutes()) {
      for (const method of route.methods) {
        const path = concrete(route.path);
        for (const target of [path, `http://x${path}`, `HTTP://X${path}`, `http://127.0.0.1:${port}${path}`]) {
          const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
          if (method === "POST") headers["content-type"] = "application/json";
          const r = await rawRequest(s.base, method, target, headers, method === "POST" ? BODY : undefined);
          if (r.status === 401 || /text\/html/.test(r.headers["content-type"] ?? ""))
            blocked.push(`${method} ${target} -> ${r.status}`);
        }
      }
    }
    expect(blocked).toEqual([]);
  });

  it("serves the page's own files without the token, whatever the target form", async () => {
    for (const method of ["GET", "HEAD"]) {
      for (const target of ["/", "/index.html", "http://x/", `http://127.0.0.1:${port}/`, "*"]) {
        const r = await rawRequest(s.base, method, target);
        expect(r.status, `${method} ${target}`).toBe(200);
        expect(r.headers["content-type"], `${method} ${target}`).toMatch(/text\/html/);
      }
    }
  });
});
