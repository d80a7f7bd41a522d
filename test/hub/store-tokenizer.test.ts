import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, LicenseNotAcceptedError } from "../../src/errors.js";
import { loadPipeline, type LoadOptions } from "../../src/pipeline/load-pipeline.js";
import { runCli } from "../helpers/cli.js";
import { FakeHub } from "../helpers/fake-hub.js";
import { copyModelFolder } from "../helpers/fixture-copies.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { freshStore, hubRepos, storeEnv } from "../helpers/hub-fixtures.js";
import { expectGoldenRun, PROMPT } from "../helpers/pipeline-parity.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-store-tokenizer-"));
const base: LoadOptions = { cacheDir, threads: 1, safetyChecker: false };
const SD15_FILE = () => ref("models/sd15-tiny.ldm.safetensors");
/** The tiny models' config folders without their tokenizers: what a single file of non-standard size needs, nothing more. */
const configOnly = (model: string) =>
  copyModelFolder(model, [
    "model_index.json",
    "scheduler",
    "unet",
    "vae",
    "text_encoder",
    ...(model === "sdxl-tiny" ? ["text_encoder_2"] : []),
  ]);

describe.skipIf(!HAVE_REFERENCE)("single-file checkpoints take their tokenizers from the store", () => {
  let hub: FakeHub;
  beforeAll(async () => {
    hub = await FakeHub.start(hubRepos());
  });
  afterAll(async () => hub.close());
  const rejection = (p: Promise<unknown>) =>
    p.then(
      () => new Error("expected the load to fail"),
      (e: unknown) => e as Error,
    );

  it("SD1: fetched once (CLIP ViT-L's), then read offline; the images are the reference's", async () => {
    const store = freshStore(hub.url);
    const config = configOnly("sd15-tiny");
    const status: string[] = [];
    const pipe = await loadPipeline(SD15_FILE(), {
      ...base,
      config,
      store,
      acceptLicense: true,
      onStatus: (s) => status.push(s),
    });
    try {
      expect(status.join("\n")).toMatch(/fetching the clip-l-tokenizer tokenizer from openai\/clip-vit-large-patch14/);
      await expectGoldenRun(pipe, "goldens/sd15-tiny/txt2img.safetensors", {
        prompt: PROMPT,
        steps: 4,
        cfgScale: 7.5,
        seed: 31,
        sampler: "PLMS",
        width: 64,
        height: 64,
      });
    } finally {
      await pipe.close();
    }
    hub.resetCounts();
    const again = await loadPipeline(SD15_FILE(), { ...base, config, store: { ...store, offline: true } });
    await again.close();
    expect(hub.requests).toEqual([]);
  });

  it("SDXL: both encoders' tokenizers (CLIP ViT-L's and OpenCLIP bigG's, which pads with \"!\"); the images are the reference's", async () => {
    const store = freshStore(hub.url);
    const pipe = await loadPipeline(ref("models/sdxl-tiny.ldm.safetensors"), {
      ...base,
      config: configOnly("sdxl-tiny"),
      store,
      acceptLicense: true,
    });
    try {
      await expectGoldenRun(pipe, "goldens/sdxl-tiny/txt2img.safetensors", {
        prompt: PROMPT,
        steps: 4,
        cfgScale: 5,
        seed: 31,
        sampler: "euler",
        width: 64,
        height: 64,
      });
    } finally {
      await pipe.close();
    }
  });

  it("SD2: OpenCLIP ViT-H's (from the SD 2.1 repository's tokenizer folder, padding with \"!\"); the images are the reference's", async () => {
    const store = freshStore(hub.url);
    const pipe = await loadPipeline(ref("models/sd2v-tiny.ldm.safetensors"), {
      ...base,
      config: configOnly("sd2v-tiny"),
      store,
      acceptLicense: true,
    });
    try {
      await expectGoldenRun(pipe, "goldens/sd2v-tiny/txt2img.safetensors", {
        prompt: PROMPT,
        negativePrompt: "",
        steps: 4,
        cfgScale: 7.5,
        seed: 31,
        sampler: "ddim",
        width: 64,
        height: 64,
      });
    } finally {
      await pipe.close();
    }
  });

  it("offline and not yet fetched: an error naming what to pull (or --tokenizer)", async () => {
    const store = { ...freshStore(hub.url), offline: true };
    const e = await rejection(loadPipeline(SD15_FILE(), { ...base, config: configOnly("sd15-tiny"), store }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(
      /carries no tokenizer.*HF_HUB_OFFLINE is set.*diffuse pull clip-l-tokenizer.*--tokenizer PATH/,
    );
  });

  it("a licence not accepted before stops the load without a terminal, naming diffuse pull and --accept-license", async () => {
    const e = await rejection(
      loadPipeline(SD15_FILE(), { ...base, config: configOnly("sd15-tiny"), store: freshStore(hub.url) }),
    );
    expect(e).toBeInstanceOf(LicenseNotAcceptedError);
    expect(e.message).toMatch(
      /clip-l-tokenizer \(openai\/clip-vit-large-patch14\) comes under the MIT licence.*diffuse pull clip-l-tokenizer.*--accept-license/,
    );
  });

  it("`diffuse serve --model <single file>` serves with the store's tokenizer (the A1111 API's txt2img)", async () => {
    const store = freshStore(hub.url);
    const data = mkdtempSync(join(tmpdir(), "diffuse-serve-data-"));
    const env = { ...storeEnv(store), DIFFUSE_TOKEN: "", DIFFUSE_CACHE: cacheDir };
    let answer: { status: number; body: { images?: string[]; info?: string } } | undefined;
    const r = await runCli(
      [
        "serve",
        "--port",
        "0",
        "--model",
        SD15_FILE(),
        "--config",
        configOnly("sd15-tiny"),
        "--accept-license",
        "--data",
        data,
        "--threads",
        "1",
      ],
      {
        env,
        onSpawn: (child) => {
          let err = "";
          child.stderr!.on("data", (d: Buffer) => {
            err += d.toString();
            const m = /diffuse serving (http:\/\/\S+)/.exec(err);
            if (!m || answer) return;
            answer = { status: 0, body: {} };
            void fetch(`${m[1]}/sdapi/v1/txt2img`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ prompt: PROMPT, steps: 2, seed: 31, width: 64, height: 64 }),
            })
              .then(async (res) => (answer = { status: res.status, body: await res.json() }))
              .finally(() => child.kill("SIGTERM"));
          });
        },
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(answer?.status, JSON.stringify(answer?.body)).toBe(200);
    expect(answer!.body.images).toHaveLength(1);
    expect(r.stderr).toMatch(/fetching the clip-l-tokenizer tokenizer/);
  });
});
