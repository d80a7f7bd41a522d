/**
 * The memory limit at acceptance: a request whose memory estimate (generation-estimate.ts) is over the server's
 * limit (serve --max-memory) is refused with 422 on both APIs, with the estimate, the limit and the size that fits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, startServer, tempDir, type TestServer } from "./harness.js";

describe("a server with a 0.5 GiB memory limit (the embedded model)", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path, maxMemory: 0.5 * 1024 ** 3, workBudget: 1e9 });
  });
  afterAll(async () => {
    await s?.close();
    cache.remove();
  });

  it("refuses a 1024x1024 request with 422 on our API and on A1111's txt2img, saying the estimate and the limit", async () => {
    const ours = await postJson<{ error: string; message: string }>(`${s.base}/api/v1/jobs`, {
      prompt: "x",
      width: 1024,
      height: 1024,
      steps: 1,
    });
    expect(ours.status).toBe(422);
    expect(ours.body.error).toBe("over_memory");
    expect(ours.body.message).toMatch(/a 1024x1024 generation needs about \d+\.\d GiB of memory/);
    expect(ours.body.message).toContain("over the limit of 0.5 GiB");
    expect(ours.body.message).toMatch(/the largest size of its shape that fits is \d+x\d+/);
    expect(ours.body.message).toContain("diffuse serve --max-memory");
    const a1111 = await postJson<{ error: string; detail: string }>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "x",
      width: 1024,
      height: 1024,
      steps: 1,
    });
    expect(a1111.status).toBe(422);
    expect(JSON.stringify(a1111.body)).toContain("over the limit of 0.5 GiB");
  });

  it("accepts what fits under the limit", async () => {
    const r = await postJson(`${s.base}/api/v1/jobs`, { prompt: "x", width: 64, height: 64, steps: 1 });
    expect(r.status).toBe(202);
  });
});
