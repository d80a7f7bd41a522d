import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, tempDir, type TestServer } from "./harness.js";

/** A 40x24 sketch: black strokes (a vertical bar at x 10-12) on white paper. */
async function sketchBase64(): Promise<string> {
  const data = new Uint8Array(40 * 24 * 3).fill(255);
  for (let y = 0; y < 24; y++) for (let x = 10; x <= 12; x++) data.fill(0, (y * 40 + x) * 3, (y * 40 + x) * 3 + 3);
  return (
    await sharp(data, { raw: { width: 40, height: 24, channels: 3 } })
      .png()
      .toBuffer()
  ).toString("base64");
}

describe.skipIf(!HAVE_REFERENCE)("A1111 ControlNet extension routes", () => {
  let s: TestServer;
  const models = tempDir("diffuse-cn-models-");
  beforeAll(async () => {
    // A models folder as A1111's extension has one: a single file, a diffusers folder, and things that are not ControlNets.
    copyFileSync(ref("models/controlnet-tiny.ldm.safetensors"), join(models.path, "control_tiny_scribble.safetensors"));
    mkdirSync(join(models.path, "controlnet-tiny-diffusers"));
    for (const f of ["config.json", "diffusion_pytorch_model.safetensors"])
      copyFileSync(ref("models/controlnet-tiny", f), join(models.path, "controlnet-tiny-diffusers", f));
    copyFileSync(ref("models/sd15-tiny.ldm.safetensors"), join(models.path, "not-a-controlnet.safetensors"));
    s = await startServer({ controlnetDirs: [models.path] });
  });
  afterAll(async () => {
    await s.close();
    models.remove();
  });

  it('GET /controlnet/model_list lists the folder\'s ControlNets as "name [old short hash]", and nothing else', async () => {
    const { model_list } = await getJson<{ model_list: string[] }>(`${s.base}/controlnet/model_list`);
    expect(model_list).toHaveLength(2);
    expect(model_list[0]).toMatch(/^control_tiny_scribble \[[0-9a-f]{8}\]$/);
    expect(model_list[1]).toMatch(/^controlnet-tiny-diffusers \[[0-9a-f]{8}\]$/);
    // A1111's old hash: sha256 of the 64 KiB at offset 1 MiB (the tiny file is smaller than 1 MiB: of nothing).
    expect(model_list[0]).toBe("control_tiny_scribble [e3b0c442]");
  });

  it("GET /controlnet/module_list names the modules with their sliders; version and settings answer as the extension's", async () => {
    const r = await getJson<{
      module_list: string[];
      module_detail: Record<string, { sliders: { name: string; value: number; min: number; max: number }[] }>;
    }>(`${s.base}/controlnet/module_list`);
    expect(r.module_list).toEqual(["none", "scribble", "canny", "invert"]);
    expect(r.module_detail["canny"]!.sliders.map((x) => [x.name, x.value])).toEqual([
      ["Preprocessor Resolution", 512],
      ["Canny Low Threshold", 100],
      ["Canny High Threshold", 200],
    ]);
    expect(r.module_detail["none"]!.sliders).toEqual([]);
    const aliases = await getJson<{ module_list: string[] }>(`${s.base}/controlnet/module_list?alias_names=true`);
    expect(aliases.module_list).toContain("invert (from white bg & black line)");
    expect(await getJson(`${s.base}/controlnet/version`)).toEqual({ version: 2 });
    expect(await getJson(`${s.base}/controlnet/settings`)).toEqual({ control_net_unit_count: 8 });
  });

  it("POST /controlnet/detect runs the preprocessor: a dark-on-white sketch becomes white strokes on black at the processor resolution", async () => {
    const r = await postJson<{ info: string; images: string[] }>(`${s.base}/controlnet/detect`, {
      controlnet_module: "scribble",
      controlnet_input_images: [await sketchBase64()],
      controlnet_processor_res: 72,
    });
    expect(r.status).toBe(200);
    expect(r.body.info).toBe("Success");
    const { data, info } = await sharp(Buffer.from(r.body.images[0]!, "base64"))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([120, 72]); // the shorter side (24) brought to 72
    // The bar (x 10-12 of 40, so 30-38 of 120) is white; the paper black.
    expect(data[(30 * 120 + 34) * info.channels]).toBe(255);
    expect(data[(30 * 120 + 100) * info.channels]).toBe(0);
    // A resolution outside the slider's range (64-2048) takes its default, 512, as the extension's bound check does.
    const low = await postJson<{ images: string[] }>(`${s.base}/controlnet/detect`, {
      controlnet_module: "scribble",
      controlnet_input_images: [await sketchBase64()],
      controlnet_processor_res: 48,
    });
    expect((await sharp(Buffer.from(low.body.images[0]!, "base64")).metadata()).height).toBe(512);
  });

  it("an unknown module, or no image, is a 422 naming what is valid", async () => {
    const bad = await postJson<{ detail: string }>(`${s.base}/controlnet/detect`, {
      controlnet_module: "depth_leres++",
      controlnet_input_images: [await sketchBase64()],
    });
    expect(bad.status).toBe(422);
    expect(bad.body.detail).toMatch(
      /Module not available: "depth_leres\+\+"; the modules are none, scribble, canny, invert/,
    );
    const none = await postJson<{ detail: string }>(`${s.base}/controlnet/detect`, { controlnet_module: "canny" });
    expect(none.status).toBe(422);
    expect(none.body.detail).toMatch(/No image selected/);
  });
});
