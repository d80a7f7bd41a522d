import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { encodeSafetensors, f32Bytes } from "../weights/safetensors-writer.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, tempDir, type TestServer } from "./harness.js";

const ADAPTERS = "models/sd15-tiny-adapters";

describe.skipIf(!HAVE_REFERENCE)("A1111's LoRA and embedding routes, and LoRA tags through the server's worker", () => {
  const work = tempDir("diffuse-server-loras-");
  const loraDir = join(work.path, "loras");
  const embeddingsDir = join(work.path, "embeddings");
  let server: TestServer;

  beforeAll(async () => {
    mkdirSync(join(loraDir, "styles"), { recursive: true });
    mkdirSync(embeddingsDir);
    copyFileSync(ref(ADAPTERS, "lora-kohya.safetensors"), join(loraDir, "styles", "lora-kohya.safetensors"));
    writeFileSync(join(loraDir, "old.pt"), Buffer.from([0x80, 0x02]));
    copyFileSync(ref(ADAPTERS, "ti-a1111.safetensors"), join(embeddingsDir, "ti-a1111.safetensors"));
    copyFileSync(ref(ADAPTERS, "ti-diffusers.safetensors"), join(embeddingsDir, "ti-diffusers.safetensors"));
    // An embedding for a 1024-wide encoder (SD2's): A1111 lists it as skipped on an SD1 model.
    writeFileSync(
      join(embeddingsDir, "sd2-style.safetensors"),
      encodeSafetensors([
        { name: "emb_params", dtype: "F32", shape: [3, 1024], data: f32Bytes(new Float32Array(3 * 1024)) },
      ]),
    );
    server = await startServer({
      loadOptions: { threads: 1, cacheDir: join(work.path, "cache"), loraDir, embeddingsDir },
    });
  });

  afterAll(async () => {
    await server?.close();
    work.remove();
  });

  it("GET /sdapi/v1/loras lists the folder's LoRAs, .safetensors and kohya's .pt (subfolders too) with A1111's fields, metadata JSON parsed", async () => {
    const loras = await getJson<{ name: string; alias: string; path: string; metadata: Record<string, unknown> }[]>(
      `${server.base}/sdapi/v1/loras`,
    );
    expect(loras).toEqual([
      {
        name: "lora-kohya",
        alias: "lora-kohya",
        path: join(loraDir, "styles", "lora-kohya.safetensors"),
        metadata: expect.objectContaining({
          ss_network_module: "networks.lora",
          ss_base_model_version: "sd_v1",
          ss_network_args: { conv_dim: "4", conv_alpha: "2.0" },
        }),
      },
      // a .pt is listed as A1111 lists it (read as data when used; this one is broken, and says so then)
      { name: "old", alias: "old", path: join(loraDir, "old.pt"), metadata: {} },
    ]);
  });

  it("POST /sdapi/v1/refresh-loras answers null and picks up a file added since", async () => {
    copyFileSync(ref(ADAPTERS, "loha.safetensors"), join(loraDir, "loha.safetensors"));
    expect((await getJson<unknown[]>(`${server.base}/sdapi/v1/loras`)).length).toBe(2);
    const r = await postJson<unknown>(`${server.base}/sdapi/v1/refresh-loras`, {});
    expect(r).toEqual({ status: 200, body: null });
    expect((await getJson<{ name: string }[]>(`${server.base}/sdapi/v1/loras`)).map((l) => l.name)).toEqual([
      "loha",
      "lora-kohya",
      "old",
    ]);
  });

  it("GET /sdapi/v1/embeddings answers {loaded, skipped} as A1111 does: by name, with shape and vector count", async () => {
    const e = await getJson<Record<string, Record<string, unknown>>>(`${server.base}/sdapi/v1/embeddings`);
    expect(e).toEqual({
      loaded: {
        "ti-a1111": { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: 32, vectors: 2 },
        "ti-diffusers": { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: 32, vectors: 1 },
      },
      skipped: { "sd2-style": { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: 1024, vectors: 3 } },
    });
  });

  it("txt2img with <lora:lora-kohya:0.8> in the prompt: the LoRA reaches the model's worker, the image is the reference's, info has Lora hashes", async () => {
    const r = await postJson<{ images: string[]; info: string }>(`${server.base}/sdapi/v1/txt2img`, {
      prompt: "a photo of an astronaut riding a horse on mars <lora:lora-kohya:0.8>",
      negative_prompt: "",
      steps: 4,
      cfg_scale: 7.5,
      seed: 31,
      sampler_name: "PLMS",
      width: 64,
      height: 64,
    });
    expect(r.status).toBe(200);
    const info = JSON.parse(r.body.info) as { infotexts: string[]; extra_generation_params: Record<string, unknown> };
    expect(info.infotexts[0]).toMatch(/Lora hashes: "lora-kohya: [0-9a-f]{12}"/);
    expect(info.extra_generation_params["Lora hashes"]).toMatch(/^lora-kohya: [0-9a-f]{12}$/);
    const pixels = await sharp(Buffer.from(r.body.images[0]!, "base64")).raw().toBuffer();
    const want = golden("goldens/sd15-tiny-lora/txt2img_kohya_0.8.safetensors").get("image_uint8");
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(pixels[i]! - want[i]!));
    expect(max).toBeLessThanOrEqual(1);
  });

  it("an unknown LoRA fails the request with the close matches", async () => {
    const r = await postJson<{ detail: string }>(`${server.base}/sdapi/v1/txt2img`, {
      prompt: "a cat <lora:lora-kohy:1>",
      steps: 1,
      width: 64,
      height: 64,
    });
    expect(r.status).toBe(422);
    expect(r.body.detail).toMatch(/no LoRA named "lora-kohy" .*did you mean "lora-kohya"\?/);
  });

  it("folders that do not exist list nothing", async () => {
    const none = join(work.path, "none");
    const s = await startServer({
      loadOptions: { threads: 1, cacheDir: join(work.path, "cache"), loraDir: none, embeddingsDir: none },
    });
    try {
      expect(await getJson(`${s.base}/sdapi/v1/loras`)).toEqual([]);
      expect(await getJson(`${s.base}/sdapi/v1/embeddings`)).toEqual({ loaded: {}, skipped: {} });
    } finally {
      await s.close();
    }
  });
});
