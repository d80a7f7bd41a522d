/**
 * Deeply nested JSON at the HTTP edge: refused before it is parsed, so it can neither be stored (and then break
 * every later read) nor run a job whose answer then fails to serialise. A value stored by an older version
 * must not break GET /sdapi/v1/options either.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { MAX_JSON_DEPTH } from "../../src/json-depth.js";
import { startServer, tempDir, type TestServer } from "./harness.js";

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
const post = (url: string, body: string) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });

describe("JSON nesting at the HTTP edge", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path });
  });
  afterAll(async () => {
    await s?.close();
    cache.remove();
  });

  it("refuses POST /sdapi/v1/options nested 4,112 (and 100,000) deep with 400 naming the limit, and GET keeps working", async () => {
    for (const depth of [4112, 100_000]) {
      const r = await post(`${s.base}/sdapi/v1/options`, `{"deep": ${nested(depth)}}`);
      expect(r.status, `depth ${depth}`).toBe(400);
      const body = (await r.json()) as { detail: string };
      expect(body.detail).toContain(`${MAX_JSON_DEPTH} levels`);
    }
    const get = await fetch(`${s.base}/sdapi/v1/options`);
    expect(get.status).toBe(200);
    expect(await get.json()).not.toHaveProperty("deep");
  });

  it("accepts nesting up to the limit and refuses one level more, counting the body's own object", async () => {
    const within = await post(`${s.base}/sdapi/v1/options`, `{"ok": ${nested(MAX_JSON_DEPTH - 1)}}`);
    expect(within.status).toBe(200);
    const over = await post(`${s.base}/sdapi/v1/options`, `{"over": ${nested(MAX_JSON_DEPTH)}}`);
    expect(over.status).toBe(400);
    // Brackets inside strings are text, not nesting.
    const text = await post(`${s.base}/sdapi/v1/options`, JSON.stringify({ brackets: "[".repeat(10_000) }));
    expect(text.status).toBe(200);
    const options = (await (await fetch(`${s.base}/sdapi/v1/options`)).json()) as Record<string, unknown>;
    expect(JSON.stringify(options["ok"])).toBe(nested(MAX_JSON_DEPTH - 1));
    expect(options).not.toHaveProperty("over");
  });

  it("refuses a txt2img with an unknown field nested 4,500 deep before running anything", async () => {
    const before = ((await (await fetch(`${s.base}/api/v1/jobs`)).json()) as { jobs: unknown[] }).jobs.length;
    const r = await post(
      `${s.base}/sdapi/v1/txt2img`,
      `{"prompt": "x", "steps": 1, "width": 64, "height": 64, "extra": ${nested(4500)}}`,
    );
    expect(r.status).toBe(400);
    expect(((await r.json()) as { detail: string }).detail).toMatch(new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`));
    const after = ((await (await fetch(`${s.base}/api/v1/jobs`)).json()) as { jobs: unknown[] }).jobs.length;
    expect(after).toBe(before);
  });

  it("refuses deep bodies on our API too, with its error shape", async () => {
    const r = await post(`${s.base}/api/v1/jobs`, `{"prompt": "x", "extra": ${nested(5000)}}`);
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: string; message: string };
    expect(body.error).toBe("invalid_request");
    expect(body.message).toContain(`${MAX_JSON_DEPTH} levels`);
  });

  it("echoes unknown A1111 fields within the limit in `parameters`", async () => {
    const r = await post(
      `${s.base}/sdapi/v1/txt2img`,
      JSON.stringify({ prompt: "x", steps: 1, width: 64, height: 64, alwayson_scripts: { a: { args: [[1, [2]]] } } }),
    );
    expect(r.status).toBe(200);
    const body = (await r.json()) as { parameters: Record<string, unknown> };
    expect(body.parameters["alwayson_scripts"]).toEqual({ a: { args: [[1, [2]]] } });
  });
});

describe("options stored by an older version", () => {
  it("answers GET /sdapi/v1/options with the readable options when a stored value nests too deep or is not JSON", async () => {
    const data = tempDir("diffuse-old-options-");
    const cache = tempDir("diffuse-cache-");
    try {
      // Start once so the database exists, then write values as a version without the bound could have.
      const first = await startServer({ dataDir: data.path, cacheDir: cache.path }, { listen: false });
      await first.close();
      const db = new Database(join(data.path, "diffuse.sqlite"));
      const put = db.prepare("INSERT INTO options (key, value) VALUES (?, ?)");
      put.run("deep", nested(200_000));
      put.run("broken", "{not json");
      put.run("samples_format", '"jpg"');
      db.close();
      const s = await startServer({ dataDir: data.path, cacheDir: cache.path });
      try {
        const r = await fetch(`${s.base}/sdapi/v1/options`);
        expect(r.status).toBe(200);
        const options = (await r.json()) as Record<string, unknown>;
        expect(options["samples_format"]).toBe("jpg");
        expect(options).not.toHaveProperty("deep");
        expect(options).not.toHaveProperty("broken");
        // Setting the key again replaces the bad value.
        expect((await post(`${s.base}/sdapi/v1/options`, '{"deep": [1]}')).status).toBe(200);
        expect(((await (await fetch(`${s.base}/sdapi/v1/options`)).json()) as Record<string, unknown>)["deep"]).toEqual(
          [1],
        );
      } finally {
        await s.close();
      }
    } finally {
      data.remove();
      cache.remove();
    }
  });
});
