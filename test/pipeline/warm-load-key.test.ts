/**
 * A warm load finds its compile-cache entry without building the graph only to digest it (the build was most of a
 * warm start's own work for small models): the key is remembered by what the graph is built from. Anything the
 * graph is built from that changes still gives a build, and the key is the built graph's.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CachedSessions } from "../../src/pipeline/networks.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import { cacheGraph, cacheGraphInput, CACHE_GRAPH_WIDTH } from "../helpers/cache-graph.js";

const SHA = "ab".repeat(32);

describe("loading a network whose entry is cached", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-warm-key-"));
  const builds: string[] = [];
  /** A fresh set of sessions on `dir`, as a new process makes, whose build reads `inputs`. */
  const sessions = (inputs: string, sha = SHA) =>
    new CachedSessions<"net">(
      sha,
      new CompileCache(dir),
      { cacheDir: dir, threads: 1 },
      () => {
        builds.push(inputs);
        return cacheGraph();
      },
      undefined,
      undefined,
      () => inputs,
    );
  const run = async (s: CachedSessions<"net">) => {
    const out = await (await s.get("net")).run({ x: { data: cacheGraphInput(), dims: [1, CACHE_GRAPH_WIDTH] } });
    await s.release();
    return Array.from(out.y!.data as Float32Array);
  };

  it("builds the graph at the first load only; a later load with the same inputs opens the same entry", async () => {
    const first = await run(sessions("config A"));
    expect(builds).toEqual(["config A"]);
    const entries = readdirSync(dir).filter((n) => n.startsWith(SHA.slice(0, 24)));
    expect(entries).toHaveLength(1);
    expect(await run(sessions("config A"))).toEqual(first);
    expect(await run(sessions("config A"))).toEqual(first);
    expect(builds).toEqual(["config A"]);
    expect(readdirSync(dir).filter((n) => n.startsWith(SHA.slice(0, 24)))).toEqual(entries);
  });

  it("builds again when what the graph is built from changes: other inputs, other model files", async () => {
    builds.length = 0;
    await run(sessions("config B"));
    expect(builds).toEqual(["config B"]);
    await run(sessions("config A", "cd".repeat(32)));
    expect(builds).toEqual(["config B", "config A"]);
    // The same graph from other inputs has the same key: the memo never makes a key of its own.
    const keys = readdirSync(dir).filter((n) => n.startsWith(SHA.slice(0, 24)));
    expect(keys).toHaveLength(1);
  });

  it("without a description of its inputs, a network is built at every load", async () => {
    builds.length = 0;
    const plain = () =>
      new CachedSessions<"net">(SHA, new CompileCache(dir), { cacheDir: dir, threads: 1 }, () => {
        builds.push("plain");
        return cacheGraph();
      });
    await run(plain());
    await run(plain());
    expect(builds).toEqual(["plain", "plain"]);
  });
});
