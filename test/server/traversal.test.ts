/**
 * Path traversal, table-driven: every route that takes a path or an id from the URL, against the payloads a
 * scanner tries (dot segments raw and percent-encoded once or twice, backslashes, absolute paths, NUL bytes,
 * overlong UTF-8 and Unicode look-alike dots, ...). Canary files sit beside the data folder, inside it beside
 * images/ and the database, and beside the web folder: no answer may carry any of them, /etc/passwd or the
 * SQLite database. The same server serves its own page, assets and a real image, so the routes are live.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest as rawChunked, startServer, tempDir, type RawResponse, type TestServer } from "./harness.js";
import { seedFinishedJob } from "./seeded-job.js";

const CANARY_BESIDE_DATA = "CANARY-beside-the-data-folder-7f3a";
const CANARY_IN_DATA = "CANARY-inside-the-data-folder-91c2";
const INDEX = "<!doctype html><title>the page</title>";
const ASSET = "console.log('the asset')";

/** Payloads written for a file `canary.txt` one or two folders above the route's folder, or absolute. */
const PAYLOADS = [
  "../canary.txt",
  "../../canary.txt",
  "../data/canary.txt",
  "../../../../../../../../../../etc/passwd",
  "..%2fcanary.txt",
  "..%2F..%2Fcanary.txt",
  "%2e%2e%2fcanary.txt",
  "%2e%2e/%2e%2e/canary.txt",
  ".%2e/.%2e/canary.txt",
  "%2E%2E%2F%2E%2E%2Fdata%2Fcanary.txt",
  "%252e%252e%252fcanary.txt",
  "..%252f..%252fcanary.txt",
  "%25252e%25252e%25252fcanary.txt",
  "..\\canary.txt",
  "..%5c..%5ccanary.txt",
  "..%255c..%255ccanary.txt",
  "....//....//canary.txt",
  "..;/..;/canary.txt",
  "..%00/canary.txt",
  "canary.txt%00.png",
  "%c0%ae%c0%ae/%c0%ae%c0%ae/canary.txt",
  "..%c0%af..%c0%afcanary.txt",
  "%e2%80%a4%e2%80%a4/canary.txt",
  "%ef%bc%8e%ef%bc%8e%ef%bc%8f%ef%bc%8e%ef%bc%8e%ef%bc%8fcanary.txt",
  "..%u2216..%u2216canary.txt",
  "/etc/passwd",
  "%2fetc%2fpasswd",
  "file:///etc/passwd",
  "C:%5cWindows%5cwin.ini",
  "../data/diffuse.db",
  "..%2fdata%2fdiffuse.db",
];

/** A raw request whose body is de-chunked (the page's files are streamed with chunked transfer encoding). */
async function rawRequest(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawResponse> {
  const r = await rawChunked(base, method, target, headers, body);
  if (!/chunked/i.test(r.headers["transfer-encoding"] ?? "")) return r;
  let out = "";
  let rest = r.body;
  for (;;) {
    const eol = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) break;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
  return { ...r, body: out };
}

describe("path traversal through every route that takes a path", () => {
  let s: TestServer;
  let root: { path: string; remove: () => void };
  let seeded: { jobId: string; imageId: string; png: Buffer };
  const notAModel = tempDir("diffuse-not-a-model-");

  beforeAll(async () => {
    root = tempDir("diffuse-traversal-");
    const data = join(root.path, "data");
    const web = join(root.path, "web");
    mkdirSync(join(web, "assets"), { recursive: true });
    writeFileSync(join(web, "index.html"), INDEX);
    writeFileSync(join(web, "assets", "app.js"), ASSET);
    writeFileSync(join(root.path, "canary.txt"), CANARY_BESIDE_DATA);
    s = await startServer({ dataDir: data, webRoot: web }, { modelPath: notAModel.path });
    writeFileSync(join(data, "canary.txt"), CANARY_IN_DATA);
    seeded = await seedFinishedJob(s.app);
  });
  afterAll(async () => {
    await s?.close();
    root?.remove();
    notAModel.remove();
  });

  /** A response leaks when it carries a canary, a passwd line, the database or a Windows system file. */
  function leak(body: string): string | undefined {
    if (body.includes(CANARY_BESIDE_DATA)) return "the canary beside the data folder";
    if (body.includes(CANARY_IN_DATA)) return "the canary inside the data folder";
    if (/root:.*:0:0:/.test(body)) return "/etc/passwd";
    if (body.includes("SQLite format 3")) return "the database";
    if (/\[fonts\]|for 16-bit app support/i.test(body)) return "win.ini";
    return undefined;
  }

  const routes: { name: string; method: string; target: (p: string) => string; page: boolean }[] = [
    { name: "GET /api/v1/images/:id", method: "GET", target: (p) => `/api/v1/images/${p}`, page: false },
    { name: "GET /* (the page's files)", method: "GET", target: (p) => `/${p}`, page: true },
    { name: "GET /assets/* (the page's assets)", method: "GET", target: (p) => `/assets/${p}`, page: true },
    { name: "GET /api/v1/jobs/:id", method: "GET", target: (p) => `/api/v1/jobs/${p}`, page: false },
    { name: "GET /api/v1/jobs/:id/events", method: "GET", target: (p) => `/api/v1/jobs/${p}/events`, page: false },
    { name: "DELETE /api/v1/jobs/:id", method: "DELETE", target: (p) => `/api/v1/jobs/${p}`, page: false },
  ];

  it("the routes are live: the page, an asset and a real image are served", async () => {
    expect((await rawRequest(s.base, "GET", "/")).body).toBe(INDEX);
    expect((await rawRequest(s.base, "GET", "/assets/app.js")).body).toBe(ASSET);
    const image = await rawRequest(s.base, "GET", `/api/v1/images/${seeded.imageId}`);
    expect(image.status).toBe(200);
    expect(Buffer.from(image.body, "latin1").equals(seeded.png)).toBe(true);
    expect((await rawRequest(s.base, "GET", `/api/v1/jobs/${seeded.jobId}`)).status).toBe(200);
  });

  for (const route of routes) {
    it(`${route.name}: ${PAYLOADS.length} payloads, no file outside the served folders`, async () => {
      const wrong: string[] = [];
      for (const payload of PAYLOADS) {
        const target = route.target(payload);
        const r = await rawRequest(s.base, route.method, target);
        const leaked = leak(r.body);
        if (leaked) wrong.push(`${route.method} ${target} -> ${r.status}: ${leaked}`);
        // The page's route may answer with the page itself (it routes unknown paths without an extension).
        const fine = r.status === 400 || r.status === 404 || (route.page && r.status === 200 && r.body === INDEX);
        if (!fine) wrong.push(`${route.method} ${target} -> ${r.status} ${r.body.slice(0, 100)}`);
      }
      expect(wrong).toEqual([]);
    });
  }

  // A1111's img2img decodes its uploads with the same readImageUpload as our API (after looking at the model,
  // which this server has none of), so our API's rows stand for it.
  it("uploads take base64 only: a path given as an image is never read", async () => {
    const paths = [
      "../canary.txt",
      "/etc/passwd",
      join(root.path, "canary.txt"),
      `file://${join(root.path, "canary.txt")}`,
      "data:image/png;base64,Li4vY2FuYXJ5LnR4dA==",
    ];
    const wrong: string[] = [];
    for (const p of paths) {
      for (const [url, body] of [
        ["/api/v1/jobs", { type: "img2img", prompt: "x", init_image: p }],
        ["/api/v1/jobs", { type: "inpaint", prompt: "x", init_image: p, mask: p }],
        ["/sdapi/v1/png-info", { image: p }],
      ] as const) {
        const r = await rawRequest(s.base, "POST", url, { "content-type": "application/json" }, JSON.stringify(body));
        const leaked = leak(r.body);
        if (leaked) wrong.push(`POST ${url} ${p} -> ${r.status}: ${leaked}`);
        // png-info answers 200 with nothing in it for bytes that are not a PNG, as A1111 does.
        if (r.status >= 500 || (r.status === 200 && url !== "/sdapi/v1/png-info"))
          wrong.push(`POST ${url} ${p} -> ${r.status} ${r.body.slice(0, 100)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
