import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { JobList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE, OWN_FIXTURES, ref } from "../helpers/fixtures.js";
import { maxChannelDiff, rgbPixels } from "../helpers/sketch.js";
import { getJson, postJson, startServer, tempDir, TINY_MODEL, type TestServer } from "./harness.js";

/**
 * T2I-Adapters where A1111's ControlNet extension keeps them: in its models folder beside the ControlNets, listed by
 * /controlnet/model_list, and used by an `alwayson_scripts.controlnet` unit that names one.
 */
describe.skipIf(!HAVE_REFERENCE)("T2I-Adapters through A1111's ControlNet extension API", () => {
  const DIR = join(OWN_FIXTURES, "t2i-adapter");
  let s: TestServer;
  const models = tempDir("diffuse-a1111-t2i-");
  const cache = tempDir("diffuse-a1111-t2i-cache-");
  const control = readFileSync(join(DIR, "control-104x72.png")).toString("base64");
  beforeAll(async () => {
    cpSync(join(DIR, "sd15-tiny-adapter.pth.safetensors"), join(models.path, "t2iadapter_tiny.safetensors"));
    cpSync(join(DIR, "sdxl-tiny-adapter"), join(models.path, "t2i-adapter-tiny-xl"), { recursive: true });
    cpSync(ref("models/controlnet-tiny"), join(models.path, "control_tiny"), { recursive: true });
    s = await startServer({ controlnetDirs: [models.path], cacheDir: cache.path });
  });
  afterAll(async () => {
    await s.close();
    models.remove();
    cache.remove();
  });

  it("lists adapter files and folders beside the ControlNets", async () => {
    const list = (await getJson<{ model_list: string[] }>(`${s.base}/controlnet/model_list`)).model_list;
    expect(list.map((t) => t.replace(/ \[[0-9a-f]{8}\]$/, ""))).toEqual([
      "control_tiny",
      "t2i-adapter-tiny-xl",
      "t2iadapter_tiny",
    ]);
  });

  it("a unit naming an adapter gives the pipeline's adapter-guided image and the extension's infotext", async () => {
    const request = {
      prompt: "a red circle",
      negative_prompt: "",
      seed: 7,
      steps: 3,
      width: 104,
      height: 72,
      sampler_name: "Euler",
      cfg_scale: 7,
      alwayson_scripts: {
        controlnet: {
          args: [
            {
              enabled: true,
              input_image: control,
              module: "none",
              model: "t2iadapter_tiny",
              weight: 0.8,
              guidance_end: 0.7,
            },
          ],
        },
      },
    };
    const r = await postJson<{ images: string[]; info: string; detail?: string }>(
      `${s.base}/sdapi/v1/txt2img`,
      request,
    );
    expect(r.body.detail).toBeUndefined();
    expect(r.status).toBe(200);
    const info = JSON.parse(r.body.info) as { extra_generation_params: Record<string, string> };
    expect(info.extra_generation_params["ControlNet 0"]).toMatch(
      /^Module: none, Model: t2iadapter_tiny \[[0-9a-f]{8}\], Weight: 0\.8, Resize Mode: Crop and Resize, Guidance Start: 0\.0, Guidance End: 0\.7,/,
    );
    const jobId = (await getJson<JobList>(`${s.base}/api/v1/jobs?limit=1`)).jobs[0]!.id;
    const pipe = await loadPipeline(TINY_MODEL, { threads: 1, cacheDir: cache.path });
    try {
      // The same request in the library's names (the HTTP edge maps A1111's onto these).
      const plain = {
        prompt: "a red circle",
        negativePrompt: "",
        seed: 7,
        steps: 3,
        width: 104,
        height: 72,
        sampler: "Euler",
        cfgScale: 7,
      };
      const direct = await pipe.generate({
        ...plain,
        jobId: jobId,
        controlnet: [
          {
            image: Buffer.from(control, "base64"),
            model: join(models.path, "t2iadapter_tiny.safetensors"),
            weight: 0.8,
            guidanceEnd: 0.7,
          },
        ],
      });
      const without = await pipe.generate({ ...plain, jobId: jobId });
      const served = await rgbPixels(Buffer.from(r.body.images[0]!, "base64"));
      expect(maxChannelDiff(served, await rgbPixels(await direct.images[0]!.png()))).toBeLessThanOrEqual(1);
      expect(maxChannelDiff(served, await rgbPixels(await without.images[0]!.png()))).toBeGreaterThan(1);
    } finally {
      await pipe.close();
    }
  });
});
