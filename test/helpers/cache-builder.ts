// A process that loads a graph through the compile cache as `diffuse generate` does (build the entry when it is
// missing, then open it, rebuilding its compact weights), runs it once and prints the output as JSON. Spawned several at a
// time by the concurrency tests; it prints "ready" once imported and starts when a line arrives on stdin, so the
// processes race from the same moment.
import { createInterface } from "node:readline";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import { CACHE_GRAPH_WIDTH, cacheGraph, cacheGraphInput } from "./cache-graph.js";

const [dir, key] = process.argv.slice(2) as [string, string];
process.stdout.write("ready\n");
await new Promise<void>((go) => createInterface({ input: process.stdin }).once("line", () => go()));
const cache = new CompileCache(dir);
const session = await cache.open(cache.getOrBuild(key, cacheGraph), { threads: 1 });
const y = (await session.run({ x: { data: cacheGraphInput(), dims: [1, CACHE_GRAPH_WIDTH] } })).y!.data;
await session.release();
process.stdout.write(JSON.stringify(Array.from(y)) + "\n");
