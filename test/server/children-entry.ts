/**
 * A test process in miniature, for test/server/test-children.test.ts: starts a redis-server and a `diffuse worker`
 * against it the way the tests do, prints their process ids as one JSON line on stdout, and waits to be killed.
 * Its argument: a folder for the worker's model (one that fails to load, so the worker is ready at once).
 */
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { startRedis } from "../helpers/redis-server.js";
import { spawnDiffuse } from "./fleet.js";

const dir = process.argv[2]!;
const model = join(dir, "not-a-model.safetensors");
writeFileSync(model, Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
const redis = await startRedis();
const worker = await spawnDiffuse(
  ["worker", "--queue", redis.url, "--model", model, "--name", "orphan", "--threads", "1"],
  /diffuse worker (\S+) ready/,
  {
    DIFFUSE_CACHE: join(dir, "cache"),
  },
);
process.stdout.write(`${JSON.stringify({ redis: redis.pid, worker: worker.child.pid })}\n`);
// Keeps the process alive until the test kills it.
setInterval(() => undefined, 1 << 30);
