import { mkdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

describe("POST /sdapi/v1/options judges its values before it needs the model", () => {
  let s: TestServer;
  const dir = tempDir("diffuse-options-");
  beforeAll(async () => {
    // A folder that is no model: every request that needs the model gets 503.
    const broken = join(dir.path, "not-a-model");
    mkdirSync(broken);
    s = await startServer({}, { modelPath: broken });
  });
  afterAll(async () => {
    await s?.close();
    dir.remove();
  });

  it("a bad value is the client's 422, and options that do not name a checkpoint are stored, while the model cannot load", async () => {
    expect((await postJson(`${s.base}/sdapi/v1/options`, { CLIP_stop_at_last_layers: 0 })).status).toBe(422);
    expect((await postJson(`${s.base}/sdapi/v1/options`, { some_ui_setting: true })).status).toBe(200);
    // A checkpoint is looked up in the model store, not compared with the model: one it does not know is the
    // client's 400, whether or not the served model could load.
    expect((await postJson(`${s.base}/sdapi/v1/options`, { sd_model_checkpoint: "other.safetensors" })).status).toBe(
      400,
    );
  });
});

describe.skipIf(!HAVE_REFERENCE)("SSE streams honour the client's Connection header", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path });
  });
  afterAll(async () => {
    await s?.close();
    cache.remove();
  });

  it("a client that asks for Connection: close gets it (the stream of a finished job ends with its socket)", async () => {
    const job = await postJson<{ id: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "a cat",
      steps: 1,
      width: 64,
      height: 64,
    });
    await waitForJob(s.base, job.body.id);
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = request(
        `${s.base}/api/v1/jobs/${job.body.id}/events`,
        { headers: { connection: "close" } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.headers));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(headers["content-type"]).toMatch(/text\/event-stream/);
    expect(headers["connection"]).toBe("close");
  });
});
