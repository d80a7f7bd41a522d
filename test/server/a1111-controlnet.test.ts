import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { encodePng } from "../../src/image/codec.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { JobList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { maxChannelDiff, rgbPixels, sketchPng } from "../helpers/sketch.js";
import { getJson, postJson, startServer, tempDir, TINY_MODEL, type TestServer } from "./harness.js";

interface A1111Answer {
  images: string[];
  info: string;
  detail?: string;
}

describe.skipIf(!HAVE_REFERENCE)(
  "A1111 ControlNet extension's alwayson_scripts on /sdapi/v1/txt2img and img2img",
  () => {
    let s: TestServer;
    const models = tempDir("diffuse-a1111-cn-");
    const cache = tempDir("diffuse-a1111-cn-cache-");
    let sketch: string;
    let title: string;
    beforeAll(async () => {
      mkdirSync(join(models.path, "control_tiny_scribble"));
      cpSync(ref("models/controlnet-tiny"), join(models.path, "control_tiny_scribble"), { recursive: true });
      sketch = (await sketchPng()).toString("base64");
      s = await startServer({ controlnetDirs: [models.path], cacheDir: cache.path });
      title = (await getJson<{ model_list: string[] }>(`${s.base}/controlnet/model_list`)).model_list[0]!;
    });
    afterAll(async () => {
      await s.close();
      models.remove();
      cache.remove();
    });

    /** A request as clients of the extension's web API write one: every field of a unit, a disabled second unit. */
    const body = (unit: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
      prompt: "a red circle",
      negative_prompt: "",
      seed: 7,
      steps: 3,
      width: 64,
      height: 64,
      sampler_name: "Euler a",
      cfg_scale: 7,
      batch_size: 1,
      alwayson_scripts: {
        controlnet: {
          args: [
            {
              enabled: true,
              input_image: sketch,
              mask: null,
              module: "scribble",
              model: title,
              weight: 0.8,
              resize_mode: "Crop and Resize",
              lowvram: false,
              processor_res: 512,
              threshold_a: 64,
              threshold_b: -1,
              guidance_start: 0.0,
              guidance_end: 0.7,
              control_mode: "Balanced",
              pixel_perfect: false,
              ...unit,
            },
            { enabled: false, input_image: "", module: "canny", model: "None" },
          ],
        },
      },
      ...extra,
    });

    it("gives the pipeline's ControlNet image, then the control map as the extension returns it", async () => {
      const r = await postJson<A1111Answer>(`${s.base}/sdapi/v1/txt2img`, body());
      expect(r.body.detail).toBeUndefined();
      expect(r.status).toBe(200);
      expect(r.body.images).toHaveLength(2);
      const info = JSON.parse(r.body.info) as { extra_generation_params: Record<string, string> };
      expect(info.extra_generation_params["ControlNet 0"]).toMatch(
        /^Module: scribble, Model: control_tiny_scribble \[[0-9a-f]{8}\], Weight: 0\.8/,
      );
      const jobId = (await getJson<JobList>(`${s.base}/api/v1/jobs?limit=1`)).jobs[0]!.id;

      const pipe = await loadPipeline(TINY_MODEL, { threads: 1, cacheDir: cache.path });
      try {
        const direct = await pipe.generate({
          prompt: "a red circle",
          negativePrompt: "",
          seed: 7,
          steps: 3,
          width: 64,
          height: 64,
          sampler: "Euler a",
          cfgScale: 7,
          jobId: jobId,
          controlnet: [
            {
              image: Buffer.from(sketch, "base64"),
              model: join(models.path, "control_tiny_scribble"),
              module: "scribble",
              weight: 0.8,
              guidanceEnd: 0.7,
              thresholdA: 64,
            },
          ],
        });
        expect(
          maxChannelDiff(
            await rgbPixels(Buffer.from(r.body.images[0]!, "base64")),
            await rgbPixels(await direct.images[0]!.png()),
          ),
        ).toBeLessThanOrEqual(1);
        expect(
          maxChannelDiff(
            await rgbPixels(Buffer.from(r.body.images[1]!, "base64")),
            await rgbPixels(await encodePng(direct.controlMaps[0]!)),
          ),
        ).toBe(0);
      } finally {
        await pipe.close();
      }
    });

    it("leaves the control maps out when control_net_no_detectmap or the unit's save_detected_map says so", async () => {
      const off = await postJson<A1111Answer>(
        `${s.base}/sdapi/v1/txt2img`,
        body({}, { override_settings: { control_net_no_detectmap: true } }),
      );
      expect(off.body.images).toHaveLength(1);
      const unit = await postJson<A1111Answer>(`${s.base}/sdapi/v1/txt2img`, body({ save_detected_map: false }));
      expect(unit.body.images).toHaveLength(1);
    });

    it("img2img: a unit without an image takes the init image, as the extension does", async () => {
      const r = await postJson<A1111Answer>(`${s.base}/sdapi/v1/img2img`, {
        ...body({ input_image: undefined }),
        init_images: [sketch],
        denoising_strength: 0.6,
      });
      expect(r.status).toBe(200);
      expect(r.body.images).toHaveLength(2);
      // The map is the init sketch preprocessed: white strokes on black, the ring's left edge (x 10) lit, the paper (x 2) dark.
      const map = await rgbPixels(Buffer.from(r.body.images[1]!, "base64"));
      expect(map[(30 * 64 + 10) * 3]).toBe(255);
      expect(map[(30 * 64 + 2) * 3]).toBe(0);
    });

    it("an unknown module or model is a 422 naming the valid ones; a txt2img unit without an image is a 422", async () => {
      const mod = await postJson<A1111Answer>(`${s.base}/sdapi/v1/txt2img`, body({ module: "openpose_full" }));
      expect(mod.status).toBe(422);
      expect(mod.body.detail).toMatch(
        /alwayson_scripts\.controlnet\.args\.0\.module: no ControlNet module "openpose_full"; the modules are none, scribble, canny, invert/,
      );
      const model = await postJson<A1111Answer>(
        `${s.base}/sdapi/v1/txt2img`,
        body({ model: "control_v11p_sd15_openpose [cab727d4]" }),
      );
      expect(model.status).toBe(422);
      expect(model.body.detail).toContain(
        `alwayson_scripts.controlnet.args.0.model: no ControlNet "control_v11p_sd15_openpose [cab727d4]"; the ControlNets this server serves are "${title}"`,
      );
      const noImage = await postJson<A1111Answer>(`${s.base}/sdapi/v1/txt2img`, body({ input_image: undefined }));
      expect(noImage.status).toBe(422);
      expect(noImage.body.detail).toMatch(/args\.0: no image; give input_image/);
    });
  },
);
