import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { InputError } from "../../src/errors.js";
import { loadPipeline, type LoadOptions } from "../../src/pipeline/load-pipeline.js";
import type { GenerateParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";
import {
  expectGoldenRun,
  maxPixelDiff,
  PipelineCache,
  PROMPT,
  tinyLayouts,
  type TinyLayout,
} from "../helpers/pipeline-parity.js";
import { tinyRefinerFolder, tinyRefinerSingleFile } from "../helpers/tiny-refiner.js";
import { SDXL_SPEC, sparseCheckpoint } from "../weights/ldm-headers.js";
import { removeTempDirs, tempDir } from "../weights/safetensors-writer.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-sdxl-"));
const base: LoadOptions = { cacheDir, threads: 1, safetyChecker: false };
afterAll(removeTempDirs);

describe.skipIf(!HAVE_REFERENCE)("SDXL reproduces diffusers' StableDiffusionXLPipeline on sdxl-tiny", () => {
  const layouts = tinyLayouts("sdxl-tiny");
  const pipes = new PipelineCache({ cacheDir, threads: 1, safetyChecker: false });
  const load = (l: TinyLayout) => pipes.load(l);
  afterAll(() => pipes.closeAll());

  for (const l of layouts) {
    it(`${l.name}: txt2img, Euler, 4 steps, cfg 5, seed 31, empty negative (zeros): latents after every step and the image`, async () => {
      const p = await load(l);
      expect(p.config.family).toBe("sdxl");
      await expectGoldenRun(p, "goldens/sdxl-tiny/txt2img.safetensors", {
        prompt: PROMPT,
        steps: 4,
        cfgScale: 5,
        seed: 31,
        sampler: "euler",
        width: 64,
        height: 64,
      });
    });

    it(`${l.name}: img2img, strength 0.6, 10 steps, seed 7 (SDXL's VAE scaling 0.13025)`, async () => {
      const p = await load(l);
      const inputs = golden("goldens/sdxl-tiny/img2img_inputs.safetensors");
      const png = await sharp(Uint8Array.from(inputs.get("image_uint8_hwc")), {
        raw: { width: 64, height: 64, channels: 3 },
      })
        .png()
        .toBuffer();
      await expectGoldenRun(p, "goldens/sdxl-tiny/img2img.safetensors", {
        prompt: PROMPT,
        steps: 10,
        cfgScale: 5,
        seed: 7,
        sampler: "euler",
        initImage: png,
        denoisingStrength: 0.6,
        width: 64,
        height: 64,
      });
    });
  }

  it("prompt_2 changes the image; prompt_2 equal to the prompt changes nothing", async () => {
    const p = await load(layouts[0]!);
    const params: GenerateParams = {
      prompt: PROMPT,
      steps: 4,
      cfgScale: 5,
      seed: 31,
      sampler: "euler",
      width: 64,
      height: 64,
    };
    const want = golden("goldens/sdxl-tiny/txt2img.safetensors").get("image_uint8");
    expect(
      maxPixelDiff((await p.generate({ ...params, prompt2: PROMPT })).images[0]!.image.data, want),
    ).toBeLessThanOrEqual(1);
    expect(
      maxPixelDiff((await p.generate({ ...params, prompt2: "a red cube" })).images[0]!.image.data, want),
    ).toBeGreaterThan(1);
  });

  it("an SDXL single file without tokenizers, offline with an empty store: says what to pull, or --tokenizer, then --tokenizer-2 (or a --config folder)", async () => {
    const file = sparseCheckpoint(SDXL_SPEC);
    const empty = mkdtempSync(join(tmpdir(), "diffuse-empty-store-"));
    const store = { cacheDir: join(empty, "hf"), home: join(empty, "home"), offline: true };
    const failure = (opts: LoadOptions) =>
      loadPipeline(file, { ...opts, store }).then(
        () => new Error("expected the load to fail"),
        (e: unknown) => e as Error,
      );
    const first = await failure(base);
    expect(first).toBeInstanceOf(InputError);
    expect(first.message).toMatch(/diffuse pull clip-l-tokenizer.*--tokenizer PATH/);
    const second = await failure({ ...base, tokenizer: ref("models/sdxl-tiny/tokenizer") });
    expect(second).toBeInstanceOf(InputError);
    expect(second.message).toMatch(/diffuse pull openclip-bigg-tokenizer.*--tokenizer-2 PATH.*tokenizer_2\/.*--config/);
  });
});

describe.skipIf(!HAVE_REFERENCE)("A1111's refiner hand-over (--refiner, refiner_switch_at)", () => {
  const params: GenerateParams = {
    prompt: PROMPT,
    negativePrompt: "blurry",
    steps: 4,
    cfgScale: 5,
    seed: 31,
    width: 64,
    height: 64,
  };
  let alone: StableDiffusionPipeline;
  const opened: StableDiffusionPipeline[] = [];
  const open = async (path: string, opts: LoadOptions = {}) => {
    const p = await loadPipeline(path, { ...base, ...opts });
    opened.push(p);
    return p;
  };
  const baseAlone = async () => (alone ??= await open(ref("models/sdxl-tiny")));
  afterAll(async () => {
    for (const p of opened) await p.close();
  });

  for (const sampler of ["Euler a", "DPM++ 2M"]) {
    it(`${sampler}: a refiner with the model's own weights (its single file) continues the same run: the image of the model alone, and A1111's infotext fields`, async () => {
      const withRefiner = await open(ref("models/sdxl-tiny"), {
        refiner: { model: ref("models/sdxl-tiny.ldm.safetensors"), config: ref("models/sdxl-tiny") },
      });
      const want = (await (await baseAlone()).generate({ ...params, sampler: sampler })).images[0]!;
      const got = await withRefiner.generate({ ...params, sampler: sampler, refinerSwitchAt: 0.5 });
      expect(maxPixelDiff(got.images[0]!.image.data, want.image.data)).toBeLessThanOrEqual(1);
      expect(got.info).toMatch(
        new RegExp(
          `, Refiner: sdxl-tiny\\.ldm \\[${withRefiner.refiner!.identity.hash}\\], Refiner switch at: 0\\.5(, |$)`,
        ),
      );
      expect(got.info).toMatch(/, Model: sdxl-tiny, /);
    });
  }

  it("an SDXL refiner (bigG alone, aesthetic score ids) takes over at the switch: earlier steps are the model's, later ones the refiner's", async () => {
    const refined = await open(ref("models/sdxl-tiny"), { refiner: { model: tinyRefinerFolder() } });
    expect(refined.refiner!.checkpoint.config.family).toBe("sdxl-refiner");
    const trace = async (p: StableDiffusionPipeline, extra: Partial<GenerateParams>) => {
      const steps: Float32Array[] = [];
      const r = await p.generate({
        ...params,
        sampler: "euler",
        ...extra,
        onStep: (e) => steps.push(e.latents.slice()),
      });
      return { steps, image: r.images[0]!, info: r.info };
    };
    const a = await trace(await baseAlone(), {});
    // Euler, 4 leading steps: timesteps 751, 501, 251, 1; at 0.5 the refiner takes t <= 499 (A1111: (999 - t) / 1000 >= 0.5).
    const b = await trace(refined, { refinerSwitchAt: 0.5 });
    expect(b.steps.length).toBe(4);
    expect(relErr(b.steps[0]!, a.steps[0]!)).toBe(0);
    expect(relErr(b.steps[1]!, a.steps[1]!)).toBe(0);
    expect(relErr(b.steps[2]!, a.steps[2]!)).toBeGreaterThan(1e-3);
    expect(b.image.image.data.length).toBe(64 * 64 * 3);
    expect(b.steps[3]!.every(Number.isFinite)).toBe(true);
    expect(b.info).toMatch(/, Refiner: diffuse-sdxl-tiny-copy-\w+ \[[0-9a-f]{10}\], Refiner switch at: 0\.5/);
    // The default switch point is A1111's 0.8: here only t = 1 is refined.
    const c = await trace(refined, {});
    expect(relErr(c.steps[2]!, a.steps[2]!)).toBe(0);
    expect(relErr(c.steps[3]!, a.steps[3]!)).toBeGreaterThan(1e-3);
    expect(c.info).toMatch(/, Refiner switch at: 0\.8/);
    // At 1 the refiner never runs, and the infotext does not name it (A1111 writes the fields only when it switched).
    const d = await trace(refined, { refinerSwitchAt: 1 });
    expect(Buffer.from(d.image.image.data).equals(Buffer.from(a.image.image.data))).toBe(true);
    expect(d.info).not.toMatch(/Refiner/);
  });

  it("refuses refiner_switch_at without a refiner, a refiner of another latent space or guidance kind, and a refiner with a mask", async () => {
    await expect((await baseAlone()).generate({ ...params, refinerSwitchAt: 0.8 })).rejects.toThrow(
      /refiner switch point .*needs a refiner.*--refiner PATH/,
    );
    await expect(
      loadPipeline(ref("models/sd15-tiny"), { ...base, refiner: { model: tinyRefinerFolder() } }),
    ).rejects.toThrow(/another latent space.*scaling 0\.13025.*0\.18215/);
    await expect(
      loadPipeline(ref("models/lcm-tiny"), { ...base, refiner: { model: ref("models/sd15-tiny") } }),
    ).rejects.toThrow(/the refiner .*sd15-tiny is not an LCM and the model is: .*pair LCMs with LCMs/);
    // A single-file refiner of non-standard sizes names the refiner's own config option, not the model's.
    const refinerFile = tinyRefinerSingleFile(tinyRefinerFolder(), join(tempDir("refiner"), "refiner.safetensors"));
    await expect(loadPipeline(ref("models/sdxl-tiny"), { ...base, refiner: { model: refinerFile } })).rejects.toThrow(
      /refiner\.safetensors: .*non-standard sizes.*pass a config folder \(refiner\.config \/ --refiner-config:/,
    );
    const refined = await open(ref("models/sdxl-tiny"), { refiner: { model: tinyRefinerFolder() } });
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#808080" } })
      .png()
      .toBuffer();
    await expect(refined.generate({ ...params, initImage: png, mask: png })).rejects.toThrow(
      /inpainting with a refiner is not supported/,
    );
  });
});
