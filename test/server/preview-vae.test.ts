import { afterAll, describe, expect, it } from "vitest";
import { Command } from "commander";
import sharp from "sharp";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import type { JobCreated } from "../../src/server/api-types.js";
import { addModelOptions, loadOptionsOf, type ModelFlags } from "../../src/cli/model-options.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { maxChannelDiff, rgbPixels } from "../helpers/sketch.js";
import { postJson, readSse, startServer, tempDir, TINY_MODEL, type TestServer } from "./harness.js";

const TAESD = ref("models/taesd-tiny");

/** Whether every 8x8 block of an RGB image is one colour: how the instant preview (latents upscaled) looks, not a decoder's image. */
function blocky(rgb: Buffer, width: number, height: number): boolean {
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const a = (y * width + x) * 3,
        b = ((y - (y % 8)) * width + (x - (x % 8))) * 3;
      if (rgb[a] !== rgb[b] || rgb[a + 1] !== rgb[b + 1] || rgb[a + 2] !== rgb[b + 2]) return false;
    }
  }
  return true;
}

describe.skipIf(!HAVE_REFERENCE)("live previews drawn by a TAESD (serve --preview-vae)", () => {
  const cache = tempDir("diffuse-preview-vae-cache-");
  let s: TestServer | undefined;
  afterAll(async () => {
    await s?.close();
    cache.remove();
  });

  it("diffuse serve and worker take --preview-vae as the pipeline's preview decoder", async () => {
    for (const name of ["serve", "worker"]) {
      const program = new Command().exitOverride();
      let flags: ModelFlags | undefined;
      addModelOptions(program.command(name)).action((o: ModelFlags) => {
        flags = o;
      });
      await program.parseAsync(["node", "diffuse", name, "--preview-vae", TAESD]);
      expect((await loadOptionsOf(flags!, () => {})).previewDecoder, name).toBe(TAESD);
    }
  });

  it("our API's step previews are the TAESD's image of the step, and A1111's progress current_image is a TAESD image too", async () => {
    s = await startServer({ loadOptions: { threads: 1, cacheDir: cache.path, previewDecoder: TAESD } });
    const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      prompt: "a red square",
      steps: 4,
      seed: 11,
      width: 64,
      height: 64,
    });
    const events = await readSse(
      await fetch(`${s.base}${created.body.events_url}`),
      (e) => e.event === "done" || e.event === "error",
    );
    const last = events
      .filter((e) => e.event === "step")
      .map((e) => e.data as { step: number; steps: number; preview?: string })
      .find((d) => d.step === d.steps && d.preview);
    expect(last, JSON.stringify(events.at(-1))).toBeDefined();
    const stepPreview = Buffer.from(last!.preview!.replace(/^data:image\/png;base64,/, ""), "base64");

    // A long A1111 job, watched through its progress until a preview shows, then interrupted.
    const pending = fetch(`${s.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "slow", steps: 150, width: 64, height: 64 }),
    });
    let progressImage: Buffer | undefined;
    for (let i = 0; i < 1000 && !progressImage; i++) {
      const p = (await (await fetch(`${s.base}/sdapi/v1/progress`)).json()) as {
        state: { sampling_step: number };
        current_image: string | null;
      };
      if (p.state.sampling_step >= 3 && p.current_image) progressImage = Buffer.from(p.current_image, "base64");
      else await new Promise((r) => setTimeout(r, 10));
    }
    await fetch(`${s.base}/sdapi/v1/interrupt`, { method: "POST" });
    await pending;
    expect(progressImage, "a current_image in A1111's progress").toBeDefined();

    // The same generation in this process, its last step's preview drawn by the same TAESD.
    const pipe = await loadPipeline(TINY_MODEL, { threads: 1, cacheDir: cache.path, previewDecoder: TAESD });
    let direct: Buffer | undefined;
    try {
      let preview: Promise<Buffer | undefined> | undefined;
      await pipe.generate({
        prompt: "a red square",
        steps: 4,
        seed: 11,
        width: 64,
        height: 64,
        onStep: (e) => {
          if (e.step === e.steps) preview = e.preview().then((p) => p.png);
        },
      });
      direct = await preview;
    } finally {
      await pipe.close();
    }
    expect(maxChannelDiff(await rgbPixels(stepPreview), await rgbPixels(direct!))).toBeLessThanOrEqual(1);
    const meta = await sharp(progressImage!).metadata();
    expect([meta.width, meta.height]).toEqual([64, 64]);
    expect(blocky(await rgbPixels(progressImage!), 64, 64)).toBe(false);
    expect(blocky(await rgbPixels(stepPreview), 64, 64)).toBe(false);
  });
});
