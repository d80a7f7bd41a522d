import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { JobCreated, JobStatus, ModelList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

interface SdModel {
  title: string;
  model_name: string;
  hash: string | null;
  sha256: string | null;
  filename: string;
  config: null;
}

/**
 * An AUTOMATIC1111 installation whose models/Stable-diffusion holds two tiny SD1 diffusers folders (alpha, and beta
 * with one weight negated, so the two hash apart and their images say which ran), and a single file that lists as an
 * SD1 checkpoint but cannot load without the config folder its tiny sizes need.
 */
function a1111Tree(root: string): { webui: string; checkpoints: string } {
  const webui = join(root, "stable-diffusion-webui");
  const checkpoints = join(webui, "models", "Stable-diffusion");
  mkdirSync(checkpoints, { recursive: true });
  cpSync(ref("models/sd15-tiny"), join(checkpoints, "alpha"), { recursive: true, dereference: true });
  cpSync(ref("models/sd15-tiny"), join(checkpoints, "beta"), { recursive: true, dereference: true });
  const vae = join(checkpoints, "beta", "vae", "diffusion_pytorch_model.safetensors");
  const bytes = readFileSync(vae);
  // The last byte holds the sign of the file's last weight.
  bytes[bytes.length - 1]! ^= 0x80;
  writeFileSync(vae, bytes);
  symlinkSync(ref("models/sd15-tiny.ldm.safetensors"), join(checkpoints, "broken.safetensors"));
  return { webui, checkpoints };
}

const SMALL = { prompt: "a red cube", steps: 2, width: 64, height: 64, seed: 7 };
/** How long a job may take here: a model loads (its graphs built) on a machine other tests share. */
const LONG = 120_000;

describe.skipIf(!HAVE_REFERENCE)("the server serves the checkpoints the model store knows", () => {
  const dir = tempDir("diffuse-switch-");
  const cache = tempDir("diffuse-cache-");
  let tree: { webui: string; checkpoints: string };
  let s: TestServer | undefined;

  beforeAll(() => {
    tree = a1111Tree(dir.path);
  });
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });
  afterAll(() => {
    dir.remove();
    cache.remove();
  });

  /** A server started with alpha, whose model store is the A1111 tree (and an empty, offline Hugging Face cache). */
  async function start(): Promise<TestServer> {
    const store = { cacheDir: join(dir.path, "hf-cache"), home: join(dir.path, "home"), offline: true };
    s = await startServer(
      {
        loadOptions: { threads: 1, cacheDir: cache.path, store },
        models: { ...store, modelsDirs: [tree.webui], searchDefaults: false, hashCacheDir: cache.path },
      },
      { modelPath: join(tree.checkpoints, "alpha") },
    );
    return s;
  }

  const sdModels = (base: string) => getJson<SdModel[]>(`${base}/sdapi/v1/sd-models`);
  const byName = (list: SdModel[], name: string) => list.find((m) => m.model_name === name)!;
  const modelHash = (job: JobStatus) => /Model hash: ([0-9a-f]{10})/.exec(job.images[0]!.infotext)?.[1];

  async function submit(base: string, body: Record<string, unknown>): Promise<string> {
    const r = await postJson<JobCreated>(`${base}/api/v1/jobs`, body);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.id;
  }

  it("sd-models lists every checkpoint with A1111's fields; options names the served one's title", async () => {
    const { base } = await start();
    const listed = await sdModels(base);
    expect(listed.map((m) => m.model_name).sort()).toEqual(["alpha", "beta", "broken"]);
    for (const m of listed) {
      expect(m.hash).toMatch(/^[0-9a-f]{10}$/);
      expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(m.sha256!.startsWith(m.hash!)).toBe(true);
      expect(m.title).toBe(`${m.model_name}${m.model_name === "broken" ? ".safetensors" : ""} [${m.hash}]`);
      expect(m.config).toBeNull();
    }
    expect(byName(listed, "beta").filename).toBe(join(tree.checkpoints, "beta"));
    expect(byName(listed, "alpha").hash).not.toBe(byName(listed, "beta").hash);
    const options = await getJson<{ sd_model_checkpoint: string }>(`${base}/sdapi/v1/options`);
    expect(options.sd_model_checkpoint).toBe(byName(listed, "alpha").title);
    const models = await getJson<ModelList>(`${base}/api/v1/models`);
    expect(models.served).toBe("alpha");
    expect(models.available.map((m) => [m.name, m.served, m.state])).toEqual([
      ["alpha", true, "loaded"],
      ["beta", false, "unloaded"],
      ["broken", false, "unloaded"],
    ]);
  });

  it("POST options with a title switches: jobs queued for the old model finish on it first, new jobs run on the new one", async () => {
    const { base } = await start();
    const listed = await sdModels(base);
    const alpha = byName(listed, "alpha");
    const beta = byName(listed, "beta");
    const first = await submit(base, SMALL);
    const second = await submit(base, SMALL);
    const switched = await postJson<unknown>(`${base}/sdapi/v1/options`, { sd_model_checkpoint: beta.title });
    expect(switched.status).toBe(200);
    expect((await getJson<{ sd_model_checkpoint: string }>(`${base}/sdapi/v1/options`)).sd_model_checkpoint).toBe(
      beta.title,
    );
    const third = await submit(base, SMALL);
    const [a, b, c] = [
      await waitForJob(base, first, LONG),
      await waitForJob(base, second, LONG),
      await waitForJob(base, third, LONG),
    ];
    for (const j of [a, b]) {
      expect(j.state).toBe("done");
      expect(j.model).toBe("alpha");
      expect(modelHash(j)).toBe(alpha.hash);
    }
    expect(c.state).toBe("done");
    expect(c.model).toBe("beta");
    expect(modelHash(c)).toBe(beta.hash);
    expect(Date.parse(c.started_at!)).toBeGreaterThanOrEqual(Date.parse(b.finished_at!));
    const models = await getJson<ModelList>(`${base}/api/v1/models`);
    expect(models.served).toBe("beta");
    expect(models.models[0]).toMatchObject({ name: "beta", hash: beta.hash, loaded: true });
  });

  it("a name that is not known is a 4xx that names the known ones, on both APIs", async () => {
    const { base } = await start();
    const a1111 = await postJson<{ detail: string }>(`${base}/sdapi/v1/options`, {
      sd_model_checkpoint: "no-such-model",
    });
    expect(a1111.status).toBe(400);
    expect(a1111.body.detail).toMatch(/"no-such-model"/);
    expect(a1111.body.detail).toMatch(/"alpha \[[0-9a-f]{10}\]".*"beta \[[0-9a-f]{10}\]"/);
    const put = await fetch(`${base}/api/v1/models/served`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "no-such-model" }),
    });
    expect(put.status).toBe(400);
    expect(await put.json()).toMatchObject({
      error: "unknown_model",
      field: "name",
      message: expect.stringMatching(/"beta \[[0-9a-f]{10}\]"/),
    });
    const job = await postJson<{ error: string; field: string }>(`${base}/api/v1/jobs`, {
      ...SMALL,
      model: "no-such-model",
    });
    expect(job.status).toBe(400);
    expect(job.body).toMatchObject({ error: "unknown_model", field: "model" });
    const override = await postJson<{ detail: string }>(`${base}/sdapi/v1/txt2img`, {
      ...SMALL,
      override_settings: { sd_model_checkpoint: "no-such-model" },
    });
    expect(override.status).toBe(404);
    expect((await getJson<ModelList>(`${base}/api/v1/models`)).served).toBe("alpha");
  });

  it("a model that cannot load leaves the old one serving, and says why", async () => {
    const { base } = await start();
    const alpha = byName(await sdModels(base), "alpha");
    const r = await postJson<{ detail: string }>(`${base}/sdapi/v1/options`, { sd_model_checkpoint: "broken" });
    expect(r.status).toBe(422);
    expect(r.body.detail).toMatch(/^model "broken" could not be loaded: .+; the server still serves "alpha"$/);
    expect((await getJson<{ sd_model_checkpoint: string }>(`${base}/sdapi/v1/options`)).sd_model_checkpoint).toBe(
      alpha.title,
    );
    const models = await getJson<ModelList>(`${base}/api/v1/models`);
    expect(models.served).toBe("alpha");
    const broken = models.available.find((m) => m.name === "broken")!;
    expect(broken.state).toBe("failed");
    expect(r.body.detail).toContain(broken.error!);
    const job = await waitForJob(base, await submit(base, SMALL), LONG);
    expect(job).toMatchObject({ state: "done", model: "alpha" });
  });

  it("a job may name another model (our model field, A1111's override_settings): it runs on it, and the served one stays", async () => {
    const { base } = await start();
    const beta = byName(await sdModels(base), "beta");
    // Both at once: one load of beta serves the two jobs.
    const [oursId, a1111] = await Promise.all([
      submit(base, { ...SMALL, model: "beta" }),
      postJson<{ info: string }>(`${base}/sdapi/v1/txt2img`, {
        ...SMALL,
        override_settings: { sd_model_checkpoint: beta.title },
      }),
    ]);
    const ours = await waitForJob(base, oursId, LONG);
    expect(ours).toMatchObject({ state: "done", model: "beta" });
    expect(modelHash(ours)).toBe(beta.hash);
    expect(a1111.status).toBe(200);
    expect(JSON.parse(a1111.body.info)).toMatchObject({ sd_model_name: "beta", sd_model_hash: beta.hash });
    expect((await getJson<ModelList>(`${base}/api/v1/models`)).served).toBe("alpha");
  });

  it("refresh-checkpoints finds a file added since; PUT /api/v1/models/served switches to it in the background", async () => {
    const { base } = await start();
    expect((await sdModels(base)).map((m) => m.model_name)).not.toContain("gamma");
    cpSync(ref("models/sd15-tiny"), join(tree.checkpoints, "gamma"), { recursive: true, dereference: true });
    expect(
      (await postJson<{ detail: string }>(`${base}/sdapi/v1/options`, { sd_model_checkpoint: "gamma" })).status,
    ).toBe(400);
    expect((await postJson<unknown>(`${base}/sdapi/v1/refresh-checkpoints`, {})).status).toBe(200);
    expect((await sdModels(base)).map((m) => m.model_name)).toContain("gamma");
    const put = await fetch(`${base}/api/v1/models/served`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "gamma" }),
    });
    expect(put.status).toBe(202);
    expect(((await put.json()) as ModelList).served).toBe("gamma");
    const job = await waitForJob(base, await submit(base, SMALL), LONG);
    expect(job).toMatchObject({ state: "done", model: "gamma" });
    const gamma = (await getJson<ModelList>(`${base}/api/v1/models`)).available.find((m) => m.name === "gamma")!;
    expect(gamma).toMatchObject({ served: true, state: "loaded", error: null });
  });
});
