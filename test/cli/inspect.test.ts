import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { inspect } from "../../src/cli/inspect.js";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const sha256Of = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

// Each test reads checkpoints in processes of its own and writes nothing: side by side they use both cores, where one
// at a time each spends most of its time loading modules on one.
describe.skipIf(!HAVE_REFERENCE).concurrent("diffuse inspect", () => {
  const summary = () => JSON.parse(readFileSync(ref("models/models_summary.json"), "utf8")).models["sd15-tiny"];

  it("reports the fixture README's parameter counts for sd15-tiny in both layouts, with stored dtypes and A1111's short hash", async () => {
    const params = summary().params;
    const folder = await runCli(["inspect", ref("models/sd15-tiny"), "--json"]);
    const single = await runCli([
      "inspect",
      ref("models/sd15-tiny.ldm.safetensors"),
      "--config",
      ref("models/sd15-tiny"),
      "--json",
    ]);
    for (const [r, dtype] of [
      [folder, "F32"],
      [single, "F16"],
    ] as const) {
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.family).toBe("sd1");
      expect(j.default_size).toBe(64);
      expect(j.components).toEqual({
        unet: { params: params.unet, dtype },
        vae: { params: params.vae, dtype },
        text_encoder: { params: params.text_encoder, dtype },
      });
    }
    // The short hash is the first 10 hex digits of the file's sha256, which the fixtures' manifest lists.
    const manifest = JSON.parse(readFileSync(ref("manifest.json"), "utf8")) as {
      files: { path: string; sha256: string }[];
    };
    const sha256 = manifest.files.find((f) => f.path === "models/sd15-tiny.ldm.safetensors")!.sha256;
    expect(JSON.parse(single.stdout).hash).toBe(sha256.slice(0, 10));
  });

  it("names the family, prediction type and default size of SD2, SDXL and LCM models, with every text encoder's parameters", async () => {
    const models = JSON.parse(readFileSync(ref("models/models_summary.json"), "utf8")).models;
    const cases = [
      ["sd2v-tiny", "sd2", "v_prediction", ["text_encoder"]],
      ["sdxl-tiny", "sdxl", "epsilon", ["text_encoder", "text_encoder_2"]],
      ["lcm-tiny", "sd1", "epsilon", ["text_encoder"]],
    ] as const;
    // In process (the CLI prints this object as it is; one run below checks the command itself).
    for (const [model, family, prediction, encoders] of cases) {
      const folder = await inspect(ref(`models/${model}`));
      const single = await inspect(ref(`models/${model}.ldm.safetensors`), { config: ref(`models/${model}`) });
      for (const j of [folder, single]) {
        expect(j.family).toBe(family);
        expect(j.prediction).toBe(prediction);
        // sample_size 8 latent pixels x the VAE's factor 8
        expect(j.default_size).toBe(64);
        expect(Object.keys(j.components)).toEqual(["unet", "vae", ...encoders]);
        if (model === "lcm-tiny") expect(j.lcm_guidance_embedding).toBe(32);
        else expect(j.lcm_guidance_embedding).toBeUndefined();
        const params = models[model]?.params;
        if (params)
          for (const c of Object.keys(j.components)) expect(j.components[c]!.params, `${model} ${c}`).toBe(params[c]);
      }
      expect(single.components).toEqual(
        Object.fromEntries(Object.entries(folder.components).map(([k, v]) => [k, { ...v, dtype: "F16" }])),
      );
    }
    const text = await runCli(["inspect", ref("models/sdxl-tiny")]);
    expect(text.stdout).toMatch(/family +sdxl, epsilon prediction, 64 px, diffusers layout/);
    expect(text.stdout).toMatch(/text encoder 2 +73,391 parameters, F32/);
  });

  it("a single file of non-standard size without --config: family, parameters, dtypes and hash, and what needs --config", async () => {
    const models = JSON.parse(readFileSync(ref("models/models_summary.json"), "utf8")).models;
    for (const [model, encoders] of [
      ["sdxl-tiny", ["text_encoder", "text_encoder_2"]],
      ["sd15-tiny", ["text_encoder"]],
    ] as const) {
      const path = ref(`models/${model}.ldm.safetensors`);
      const r = await runCli(["inspect", path, "--json"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.family).toBe(model === "sdxl-tiny" ? "sdxl" : "sd1");
      expect(j.layout).toBe("single-file");
      expect(j.inpainting).toBe(false);
      // the fixture README's counts, as stored (F16)
      expect(Object.keys(j.components)).toEqual(["unet", "vae", ...encoders]);
      for (const c of Object.keys(j.components))
        expect(j.components[c], `${model} ${c}`).toEqual({ params: models[model].params[c], dtype: "F16" });
      expect(j.sha256).toBe(sha256Of(path));
      expect(j.hash).toBe(sha256Of(path).slice(0, 10));
      // what the weights cannot say is absent and named, with the option that gives it
      expect(j.prediction).toBeUndefined();
      expect(j.default_size).toBeUndefined();
      expect(j.needs_config).toMatch(/prediction type and default size.*--config/);
    }
  });

  it("the embedded model's single file without --config, as the README's user types it", async () => {
    const r = await runCli(["inspect", "models/tiny-shapes.safetensors"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/family +sd1, single-file layout/);
    expect(r.stdout).toMatch(/unet +[\d,]+ parameters, F(16|32)/);
    expect(r.stdout).toContain(`hash           ${sha256Of("models/tiny-shapes.safetensors").slice(0, 10)}`);
    expect(r.stdout).toMatch(/prediction type and default size: .*--config/);
  });

  it("exits 2 with one line for a file that is not a checkpoint", async () => {
    const r = await runCli(["inspect", ref("models/models_summary.json")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
