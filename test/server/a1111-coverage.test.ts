import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { A1111_ROUTES } from "../../src/server/a1111-coverage.js";
import { CoverageGapError, coverageGaps, renderA1111Doc } from "../../src/server/a1111-coverage-doc.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { startServer, type TestServer } from "./harness.js";

const DOC = fileURLToPath(new URL("../../docs/a1111-api.md", import.meta.url));

describe("docs/a1111-api.md cannot drift from the code", () => {
  it("is exactly what `npm run docs:a1111` generates from src/server/a1111-coverage.ts", () => {
    const committed = readFileSync(DOC, "utf8");
    expect(renderA1111Doc(committed)).toBe(committed);
  });

  it("has one row for every txt2img/img2img request field the schemas validate or A1111's models define", () => {
    expect(coverageGaps()).toEqual([]);
  });

  it("refuses to generate a document whose table markers are gone, naming them", () => {
    expect(() => renderA1111Doc("# no markers\n")).toThrow(CoverageGapError);
    expect(() => renderA1111Doc("# no markers\n")).toThrow(/markers of the routes table/);
  });
});

describe.skipIf(!HAVE_REFERENCE)("the A1111 route table and the routes the server registers", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({}, { listen: false });
    await s.app.fastify.ready();
  });
  afterAll(async () => {
    await s?.close();
  });

  /** "POST /sdapi/v1/txt2img" for each method of each /sdapi route fastify has (HEAD, added for GETs, left out). */
  function registered(): Set<string> {
    const out = new Set<string>();
    for (const line of s.app.fastify.printRoutes({ commonPrefix: false }).split("\n")) {
      const m = /(\/sdapi\/\S+) \(([A-Z, ]+)\)/.exec(line);
      if (!m) continue;
      for (const method of m[2]!.split(", ")) if (method !== "HEAD") out.add(`${method} ${m[1]}`);
    }
    return out;
  }

  it("lists every registered /sdapi route as provided, and no route it calls not provided is registered", () => {
    const routes = registered();
    expect(routes.size).toBeGreaterThan(20);
    const provided = A1111_ROUTES.filter((r) => r.status !== "not provided").map((r) => `${r.method} ${r.path}`);
    const absent = A1111_ROUTES.filter((r) => r.status === "not provided").map((r) => `${r.method} ${r.path}`);
    expect([...routes].sort()).toEqual([...provided].sort());
    expect(absent.filter((r) => routes.has(r))).toEqual([]);
  });
});
