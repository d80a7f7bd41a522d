import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/server/openapi.js";
import { startServer, tempDir, type TestServer } from "./harness.js";

const TOKEN = "docs-ui-test-token";

/** Swagger UI at /docs, showing the server's own OpenAPI document; public like the page, /api/docs still guarded. */
describe("interactive API documentation at /docs", () => {
  let s: TestServer;
  // No model behind it: the documentation needs none.
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer({ token: TOKEN }, { modelPath: notAModel.path });
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  it("serves Swagger UI's page and files at /docs, without the token", async () => {
    const page = await fetch(`${s.base}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toMatch(/swagger-ui/i);
    // The page's own scripts and stylesheets load too, from where a browser resolves them.
    const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => new URL(m[1]!, page.url));
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      const r = await fetch(asset);
      expect(r.status, asset.pathname).toBe(200);
    }
  });

  it("shows the server's OpenAPI document, both APIs in it, the same as /api/docs with the token", async () => {
    const shown = await fetch(`${s.base}/docs/json`);
    expect(shown.status).toBe(200);
    const doc = (await shown.json()) as { paths: Record<string, unknown> };
    expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument({ tokenRequired: true }))));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/jobs", "/sdapi/v1/txt2img"]));
    const guarded = await fetch(`${s.base}/api/docs`);
    expect(guarded.status).toBe(401);
    const withToken = await fetch(`${s.base}/api/docs`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await withToken.json()).toEqual(doc);
  });

  it("keeps the token check on every route under /docs other than Swagger UI's own", async () => {
    // The page's catch-all is not what answers /docs any more, and an API path below /docs is no way around the token.
    expect((await fetch(`${s.base}/docs/../api/v1/jobs`)).status).toBe(401);
    expect((await fetch(`${s.base}/docs/static/..%2F..%2Fapi%2Fv1%2Fjobs`)).status).not.toBe(200);
  });
});
