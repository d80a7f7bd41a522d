import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type TestServer } from "./harness.js";

/**
 * A model folder's generation_config.json sets the guidance a request without one gets, in both APIs: the
 * embedded tiny-shapes model recommends 3 (SD's usual 7 over-steers it); a cfg the request names wins.
 */
const TINY_SHAPES = resolve(import.meta.dirname, "../../models/tiny-shapes");

describe("the model's recommended guidance over HTTP", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path }, { modelPath: TINY_SHAPES });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  async function txt2img(extra: Record<string, unknown>): Promise<number> {
    const r = await fetch(`${s.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a red circle on the left, blue background", steps: 2, seed: 1, ...extra }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { info: string };
    return (JSON.parse(body.info) as { cfg_scale: number }).cfg_scale;
  }

  it("lists it with the model, and uses it when a request names no cfg_scale", async () => {
    const models = (await (await fetch(`${s.base}/api/v1/models`)).json()) as {
      models: { default_cfg_scale: number }[];
    };
    expect(models.models[0]!.default_cfg_scale).toBe(3);
    expect(await txt2img({})).toBe(3);
    expect(await txt2img({ cfg_scale: 5 })).toBe(5);
  });

  it("lists the model folder's prompt examples with the model (the page's placeholders)", async () => {
    const models = (await (await fetch(`${s.base}/api/v1/models`)).json()) as {
      models: { prompt_examples: { prompts: string[]; negative_prompt: string | null } | null }[];
    };
    const examples = models.models[0]!.prompt_examples;
    // models/tiny-shapes/prompt_examples.json: prompts in the words the model was trained on.
    expect(examples?.prompts[0]).toBe("a small red circle on the left, blue background");
    expect(examples?.prompts.length).toBeGreaterThan(1);
    expect(examples?.negative_prompt).toBe("white background");
  });
});
