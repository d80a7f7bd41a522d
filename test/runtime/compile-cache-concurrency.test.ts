import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import { Session } from "../../src/runtime/session.js";
import { CACHE_GRAPH_WIDTH, cacheGraph, cacheGraphInput } from "../helpers/cache-graph.js";

const BUILDER = join(import.meta.dirname, "../helpers/cache-builder.ts");

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `n` builder processes on one cache folder, releases them together once all are ready, and waits. */
async function race(n: number, dir: string, key: string): Promise<Outcome[]> {
  const children = Array.from({ length: n }, () =>
    spawn(process.execPath, ["--import", "tsx", BUILDER, dir, key], { stdio: ["pipe", "pipe", "pipe"] }),
  );
  const outcomes = children.map((child) => {
    const o: Outcome = { code: null, stdout: "", stderr: "" };
    child.stdout.on("data", (d) => (o.stdout += d));
    child.stderr.on("data", (d) => (o.stderr += d));
    return {
      o,
      ready: new Promise<void>((ok) => child.stdout.on("data", () => o.stdout.startsWith("ready\n") && ok())),
      done: new Promise<Outcome>((ok) => child.on("close", (code) => ok({ ...o, code }))),
    };
  });
  await Promise.all(outcomes.map((x) => x.ready));
  for (const child of children) child.stdin.end("go\n");
  return Promise.all(outcomes.map((x) => x.done));
}

async function reference(): Promise<number[]> {
  const s = await Session.create(serializeGraph(cacheGraph()), { threads: 1 });
  const y = (await s.run({ x: { data: cacheGraphInput(), dims: [1, CACHE_GRAPH_WIDTH] } })).y!.data;
  await s.release();
  return Array.from(y);
}

/** Every process exited 0 and printed the reference output. */
function expectAllSucceeded(results: Outcome[], want: number[]): void {
  for (const r of results) {
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const y = JSON.parse(r.stdout.split("\n")[1]!) as number[];
    expect(y.length).toBe(CACHE_GRAPH_WIDTH);
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(want[i]!, 4);
  }
}

/** The entry validates, and no build folder, retired folder, lock or rebuilt weights file is left. */
function expectValidAndClean(dir: string): void {
  const lookup = new CompileCache(dir).lookup("k");
  expect(lookup.hit).toBe(true);
  const names = readdirSync(dir);
  if (names.includes(".scratch")) expect(readdirSync(join(dir, ".scratch"))).toEqual([]);
  expect(names.filter((n) => n !== ".scratch")).toEqual(["k"]);
  expect(readdirSync(join(dir, "k")).sort()).toEqual(["manifest.json", "model.onnx", "weights.half"]);
}

// Each process starts tsx and onnxruntime (about 0.7 s of CPU): on a busy 2-core machine a round of 8 takes a while.
describe("compile cache shared by concurrent processes", { timeout: 300_000 }, () => {
  it("processes building the same entry into an empty cache at once all succeed with the same output, and the entry stays valid", async () => {
    const want = await reference();
    for (const n of [3, 8]) {
      const dir = mkdtempSync(join(tmpdir(), "diffuse-cache-race-"));
      expectAllSucceeded(await race(n, dir, "k"), want);
      expectValidAndClean(dir);
    }
  });

  it("processes that find the same broken entry (weights overwritten) all succeed, and one valid entry replaces it", async () => {
    const want = await reference();
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cache-race-"));
    const cache = new CompileCache(dir);
    await (await cache.open(cache.getOrBuild("k", cacheGraph), { threads: 1 })).release();
    for (const file of ["weights.half"]) {
      const path = join(dir, "k", file);
      writeFileSync(path, randomBytes(statSync(path).size));
    }
    expect(new CompileCache(dir).lookup("k").hit).toBe(false);
    expectAllSucceeded(await race(4, dir, "k"), want);
    expectValidAndClean(dir);
  });
});
