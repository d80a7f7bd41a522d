import { afterAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { JobCreated } from "../../src/server/api-types.js";
import { QueueWorker } from "../../src/worker/queue-worker.js";
import { parseQueueUrl } from "../../src/worker/queue-url.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { startRedis, type TestRedis } from "../helpers/redis-server.js";
import { maxChannelDiff, rgbPixels, sketchPng } from "../helpers/sketch.js";
import { postJson, startServer, tempDir, TINY_MODEL, waitForJob, type TestServer } from "./harness.js";

describe.skipIf(!HAVE_REFERENCE)("a ControlNet job on the BullMQ queue", () => {
  const data = tempDir("diffuse-cn-queue-");
  const cache = tempDir("diffuse-cn-queue-cache-");
  const models = tempDir("diffuse-cn-queue-models-");
  let redis: TestRedis | undefined;
  let server: TestServer | undefined;
  let worker: QueueWorker | undefined;
  afterAll(async () => {
    await worker?.abandon();
    await server?.close();
    await redis?.stop();
    for (const d of [data, cache, models]) d.remove();
  });

  it("accepted with no worker running, survives the API server's restart, and a worker then makes the ControlNet image", async () => {
    mkdirSync(join(models.path, "controlnet-tiny"));
    cpSync(ref("models/controlnet-tiny"), join(models.path, "controlnet-tiny"), { recursive: true });
    redis = await startRedis();
    const target = parseQueueUrl(redis.url);
    const config = { queue: target, dataDir: data.path, controlnetDirs: [models.path], cacheDir: cache.path };
    server = await startServer(config);
    const sketch = await sketchPng();
    const unit = { image: sketch.toString("base64"), model: "controlnet-tiny", module: "scribble", weight: 0.9 };
    const created = await postJson<JobCreated>(`${server.base}/api/v1/jobs`, {
      prompt: "a ring",
      steps: 3,
      seed: 5,
      width: 64,
      height: 64,
      controlnet: [unit],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    await server.close();
    server = await startServer(config);

    worker = new QueueWorker({
      target,
      modelPath: TINY_MODEL,
      loadOptions: { threads: 1, cacheDir: cache.path },
      name: "w1",
      lockDurationMs: 3000,
      stalledIntervalMs: 500,
      log: () => {},
    });
    expect(await worker.start()).toEqual({});
    const done = await waitForJob(server.base, created.body.id, 90_000);
    expect(done.error).toBeNull();
    expect(done.state).toBe("done");
    expect(done.images[0]!.infotext).toMatch(
      /ControlNet 0: "Module: scribble, Model: controlnet-tiny \[[0-9a-f]{8}\], Weight: 0\.9/,
    );
    const served = await rgbPixels(
      Buffer.from(await (await fetch(`${server.base}${done.images[0]!.url}`)).arrayBuffer()),
    );

    const pipe = await loadPipeline(TINY_MODEL, { threads: 1, cacheDir: cache.path });
    try {
      const direct = await pipe.generate({
        prompt: "a ring",
        steps: 3,
        seed: 5,
        width: 64,
        height: 64,
        jobId: done.id,
        controlnet: [{ ...unit, image: sketch, model: join(models.path, "controlnet-tiny") }],
      });
      expect(maxChannelDiff(served, await rgbPixels(await direct.images[0]!.png()))).toBeLessThanOrEqual(1);
    } finally {
      await pipe.close();
    }
  });
});
