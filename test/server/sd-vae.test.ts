import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { getPngText } from "../../src/image/png-text.js";
import type { JobCreated } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { writeScaledVaes } from "../helpers/scaled-vae.js";
import { getJson, postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

type Txt2Img = { images: string[]; info: string };

describe.skipIf(!HAVE_REFERENCE)(
  "sd_vae: the VAEs of A1111's and ComfyUI's folders, chosen per request or as an option",
  () => {
    let s: TestServer;
    const root = tempDir("diffuse-sd-vae-");
    const cache = tempDir("diffuse-cache-");
    let a1111Vae: string, comfyVae: string;
    const body = { prompt: "a red boat", steps: 2, seed: 3, width: 64, height: 64 };

    beforeAll(async () => {
      // An A1111 installation with its VAE in models/VAE (and a TAESD in VAE-approx, which is no sd_vae), and a
      // ComfyUI one with its VAE in models/vae.
      const a1111 = join(root.path, "stable-diffusion-webui");
      const comfy = join(root.path, "ComfyUI");
      for (const d of ["models/Stable-diffusion", "models/VAE", "models/VAE-approx"])
        mkdirSync(join(a1111, d), { recursive: true });
      for (const d of ["models/checkpoints", "models/vae"]) mkdirSync(join(comfy, d), { recursive: true });
      const made = writeScaledVaes(join(a1111, "models/VAE"), 0.5);
      a1111Vae = made.diffusers;
      comfyVae = writeScaledVaes(join(comfy, "models/vae"), 0.25, {
        diffusers: "comfy-scaled.safetensors",
        original: "comfy-original.safetensors",
        folder: "comfy-folder",
      }).original;
      writeFileSync(join(a1111, "models/VAE/notes.txt"), "not a model");
      s = await startServer({
        cacheDir: cache.path,
        loadOptions: { threads: 1, cacheDir: cache.path, watermark: false, safetyChecker: false },
        models: {
          cacheDir: join(root.path, "no-hf-cache"),
          home: join(root.path, "no-home"),
          searchDefaults: false,
          modelsDirs: [a1111, comfy],
        },
      });
    }, 120_000);
    afterAll(async () => {
      try {
        await s?.close();
      } finally {
        cache.remove();
        root.remove();
      }
    });

    it("GET /sdapi/v1/sd-vae lists them as A1111 does: model_name (the file's name) and filename", async () => {
      const listed = await getJson<{ model_name: string; filename: string }[]>(`${s.base}/sdapi/v1/sd-vae`);
      expect(listed.map((v) => v.model_name)).toEqual([
        "comfy-folder",
        "comfy-original.safetensors",
        "comfy-scaled.safetensors",
        "scaled-diffusers.safetensors",
        "scaled-folder",
        "vae-ft-scaled.safetensors",
      ]);
      expect(listed.find((v) => v.model_name === "scaled-diffusers.safetensors")!.filename).toBe(a1111Vae);
      for (const v of listed) expect(Object.keys(v).sort()).toEqual(["filename", "model_name"]);
    });

    it("override_settings.sd_vae decodes with that VAE and names it in info and the infotext", async () => {
      const plain = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, body);
      const chosen = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, {
        ...body,
        override_settings: { sd_vae: "comfy-original.safetensors" },
      });
      expect(chosen.status).toBe(200);
      const info = JSON.parse(chosen.body.info);
      const sha = createHash("sha256").update(readFileSync(comfyVae)).digest("hex");
      expect(info).toMatchObject({ sd_vae_name: "comfy-original.safetensors", sd_vae_hash: sha.slice(0, 10) });
      expect(info.infotexts[0]).toContain(`VAE hash: ${sha.slice(0, 10)}, VAE: comfy-original.safetensors`);
      expect(JSON.parse(plain.body.info)).toMatchObject({ sd_vae_name: null, sd_vae_hash: null });
      expect(chosen.body.images[0]).not.toBe(plain.body.images[0]);
    });

    it("the sd_vae option applies to later requests; None is the checkpoint's own; an unknown name is refused", async () => {
      expect((await postJson(`${s.base}/sdapi/v1/options`, { sd_vae: "scaled-diffusers.safetensors" })).status).toBe(
        200,
      );
      expect((await getJson<Record<string, unknown>>(`${s.base}/sdapi/v1/options`))["sd_vae"]).toBe(
        "scaled-diffusers.safetensors",
      );
      const withOption = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, body);
      expect(JSON.parse(withOption.body.info).sd_vae_name).toBe("scaled-diffusers.safetensors");
      const none = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, {
        ...body,
        override_settings: { sd_vae: "None" },
      });
      expect(JSON.parse(none.body.info).sd_vae_name).toBeNull();
      const bad = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/options`, { sd_vae: "missing.safetensors" });
      expect(bad.status).toBe(400);
      expect(bad.body.detail).toMatch(/VAE not found: "missing.safetensors".*GET \/sdapi\/v1\/sd-vae/);
      const badOverride = await postJson<{ detail: string }>(`${s.base}/sdapi/v1/txt2img`, {
        ...body,
        override_settings: { sd_vae: "missing" },
      });
      expect(badOverride.status).toBe(404);
      expect((await postJson(`${s.base}/sdapi/v1/options`, { sd_vae: "Automatic" })).status).toBe(200);
      const automatic = await postJson<Txt2Img>(`${s.base}/sdapi/v1/txt2img`, body);
      expect(JSON.parse(automatic.body.info).sd_vae_name).toBeNull();
    });

    it("our API: sd_vae by name (with or without the extension), recorded with the job; 400 for an unknown one", async () => {
      const created = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { ...body, sd_vae: "vae-ft-scaled" });
      expect(created.status).toBe(202);
      const done = await waitForJob(s.base, created.body.id);
      expect(done.state).toBe("done");
      expect(done.params).toMatchObject({ sd_vae: "vae-ft-scaled" });
      const png = new Uint8Array(await (await fetch(`${s.base}${done.images[0]!.url}`)).arrayBuffer());
      expect(getPngText(png, "parameters")).toContain("VAE: vae-ft-scaled.safetensors");
      const bad = await postJson<{ field: string; message: string }>(`${s.base}/api/v1/jobs`, {
        ...body,
        sd_vae: "nope",
      });
      expect(bad.status).toBe(400);
      expect(bad.body.field).toBe("sd_vae");
    });
  },
);
