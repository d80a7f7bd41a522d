/**
 * Cross-site requests: a page on another origin can send simple requests (text/plain, form-encoded or multipart
 * bodies, or none) to a server on this machine without any CORS preflight, e.g. POST /sdapi/v1/interrupt to
 * cancel the running job. Every state-changing route of both APIs (taken from fastify's own route table) must
 * refuse them, while non-browser clients (no Origin) and the server's own page keep working.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, routesOf, startServer, tempDir, type Route, type TestServer } from "./harness.js";

const SOME_ID = "0b9c2a3e-7f61-4d2a-9a53-2f7d0c1e4b88";
/** Fails validation on every route that reads a body, so nothing runs when a request gets through. */
const JSON_BODY = '{"steps": -1}';

describe("state-changing routes refuse cross-site requests", () => {
  let s: TestServer;
  let host: string;
  let changing: { method: string; path: string }[];
  const notAModel = tempDir("diffuse-not-a-model-");

  beforeAll(async () => {
    s = await startServer({}, { modelPath: notAModel.path });
    host = new URL(s.base).host;
    changing = routesOf(s.app.fastify).flatMap((r: Route) =>
      r.methods
        .filter((m) => m !== "GET" && m !== "HEAD")
        .map((method) => ({ method, path: r.path.replace(/:[a-z]+/g, SOME_ID) })),
    );
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  const send = (method: string, path: string, headers: Record<string, string>, body?: string) =>
    rawRequest(s.base, method, path, headers, body);

  it("covers the POST and DELETE routes of both APIs", () => {
    const names = changing.map((c) => `${c.method} ${c.path}`);
    for (const expected of [
      "POST /api/v1/jobs",
      `DELETE /api/v1/jobs/${SOME_ID}`,
      "POST /sdapi/v1/txt2img",
      "POST /sdapi/v1/img2img",
      "POST /sdapi/v1/interrupt",
      "POST /sdapi/v1/options",
      "POST /sdapi/v1/png-info",
    ]) {
      expect(names).toContain(expected);
    }
  });

  it("answers 403 to a request from another origin or site, with JSON or without a body", async () => {
    const foreign: Record<string, string>[] = [
      { origin: "http://evil.example" },
      { origin: "null" },
      { origin: `http://127.0.0.1:${Number(new URL(s.base).port) + 1}` },
      { origin: `http://localhost:${new URL(s.base).port}` },
      { origin: "http://localhost:3000", "sec-fetch-site": "same-site" },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site" },
      { origin: `http://${host}`, "sec-fetch-site": "cross-site" },
    ];
    const through: string[] = [];
    for (const { method, path } of changing) {
      for (const h of foreign) {
        for (const body of [JSON_BODY, undefined]) {
          const headers = body === undefined ? h : { ...h, "content-type": "application/json" };
          const r = await send(method, path, headers, body);
          if (r.status !== 403) through.push(`${method} ${path} ${JSON.stringify(headers)} -> ${r.status}`);
          else expect(r.body).toMatch(/cross-site|another (site|origin)/);
        }
      }
    }
    expect(through).toEqual([]);
  });

  it("answers 415 to bodies that are not JSON (what an HTML form or a no-cors fetch can send), naming the fix", async () => {
    const bodies: [string, string][] = [
      ["text/plain", '{"prompt":"x"}'],
      ["text/plain;charset=UTF-8", ""],
      ["application/x-www-form-urlencoded", "prompt=x"],
      ["application/x-www-form-urlencoded", ""],
      ["multipart/form-data; boundary=b", '--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--b--\r\n'],
    ];
    const through: string[] = [];
    for (const { method, path } of changing) {
      for (const [type, body] of bodies) {
        const r = await send(method, path, { "content-type": type }, body);
        if (r.status !== 415) through.push(`${method} ${path} ${type} -> ${r.status}`);
        else expect(r.body).toContain("Content-Type: application/json");
      }
      const untyped = await send(method, path, {}, JSON_BODY);
      if (untyped.status !== 415) through.push(`${method} ${path} body without a Content-Type -> ${untyped.status}`);
    }
    expect(through).toEqual([]);
  });

  it("serves clients that send no Origin (curl, Python, A1111 libraries) and the server's own page", async () => {
    const sameOrigin: Record<string, string>[] = [
      {},
      { origin: s.base, "sec-fetch-site": "same-origin" },
      { origin: s.base },
      { host: `LOCALHOST:${new URL(s.base).port}`, origin: `http://localhost:${new URL(s.base).port}` },
      // A reverse proxy that rewrote Host: the browser itself vouches that the page is this server's.
      { origin: "https://diffuse.example", "sec-fetch-site": "same-origin" },
    ];
    const refused: string[] = [];
    for (const { method, path } of changing) {
      for (const h of sameOrigin) {
        for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON"]) {
          const r = await send(method, path, { ...h, "content-type": type }, JSON_BODY);
          // The guard's refusal (a route's own 403, such as server-stop's when it is off, is not one).
          if ((r.status === 403 && r.body.includes('"cross_site"')) || r.status === 415)
            refused.push(`${method} ${path} ${JSON.stringify(h)} ${type} -> ${r.status} ${r.body}`);
        }
      }
    }
    expect(refused).toEqual([]);
    // `curl -X POST .../interrupt` and Python's requests.post(url): no body, no Content-Type.
    const interrupt = await send("POST", "/sdapi/v1/interrupt", {});
    expect(interrupt.status).toBe(200);
  });

  it("leaves reads alone: a GET with a foreign Origin is answered (no CORS headers, so the page cannot read it)", async () => {
    const r = await send("GET", "/api/v1/samplers", { origin: "http://evil.example", "sec-fetch-site": "cross-site" });
    expect(r.status).toBe(200);
    expect(r.headers["access-control-allow-origin"]).toBeUndefined();
  });
});
