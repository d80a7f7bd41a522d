import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import type { ListedModel } from "../../src/hub/list-models.js";
import { runCli } from "../helpers/cli.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { handMadeCacheRepo, writeZeroSafetensors } from "../helpers/hub-fixtures.js";
import { maxPixelDiff, PROMPT } from "../helpers/pipeline-parity.js";
import { resaveAsTorch } from "../weights/torch-writer.js";

/** A store with nothing in it, and a home folder with no tool installed, as environment variables. */
function emptyEnv(): { env: Record<string, string>; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-models-"));
  const env = {
    HF_HUB_CACHE: join(dir, "hf-cache"),
    DIFFUSE_HOME: join(dir, "home"),
    DIFFUSE_CACHE: join(dir, "compiled"),
    HOME: join(dir, "user"),
    HF_HUB_OFFLINE: "1",
  };
  return { env, dir };
}

const sha256Of = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

async function models(args: string[], env: Record<string, string>): Promise<ListedModel[]> {
  const r = await runCli(["models", "--json", ...args], { env });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as ListedModel[];
}

/** An AUTOMATIC1111 installation: a checkpoint, LoRAs and embeddings (fixtures linked in place, two written with real widths). */
function a1111Tree(dir: string): string {
  const root = join(dir, "stable-diffusion-webui");
  const place = (rel: string, src: string) => {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    symlinkSync(src, join(root, rel));
  };
  place("models/Stable-diffusion/sd15-tiny.safetensors", ref("models/sd15-tiny.ldm.safetensors"));
  place("models/Lora/lora-kohya.safetensors", ref("models/sd15-tiny-adapters/lora-kohya.safetensors"));
  place("embeddings/ti-a1111.safetensors", ref("models/sd15-tiny-adapters/ti-a1111.safetensors"));
  // Real-width files without training metadata: the family shows in the widths (CLIP ViT-L's 768).
  writeZeroSafetensors(join(root, "models/Lora/styles/wide.safetensors"), {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": [4, 768],
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": [320, 4],
  });
  writeZeroSafetensors(join(root, "embeddings/wide-ti.safetensors"), { emb_params: [2, 768] });
  mkdirSync(join(root, "models/VAE"), { recursive: true });
  return root;
}

describe.skipIf(!HAVE_REFERENCE)("diffuse models", () => {
  it("finds a diffusers folder laid out by hand in the Hugging Face cache, and generates with it by its repository name", async () => {
    const { env, dir } = emptyEnv();
    const readme = join(dir, "README.md");
    writeFileSync(readme, "---\nlicense: creativeml-openrail-m\nlibrary_name: diffusers\n---\n# tiny\n");
    const { snapshot } = handMadeCacheRepo(env.HF_HUB_CACHE, "someone/sd15-tiny", ref("models/sd15-tiny"), {
      "README.md": readme,
    });
    const listed = await models([], env);
    expect(listed).toHaveLength(1);
    const m = listed[0]!;
    expect(m).toMatchObject({
      name: "someone/sd15-tiny",
      kind: "checkpoint",
      family: "sd1",
      source: "hf-cache",
      path: snapshot,
      location: env.HF_HUB_CACHE,
    });
    expect(m.license).toMatchObject({ id: "creativeml-openrail-m", name: "CreativeML Open RAIL-M" });
    expect(m.hash).toMatch(/^[0-9a-f]{10}$/);

    const out = join(dir, "out.png");
    const r = await runCli(
      [
        "generate",
        PROMPT,
        "--model",
        "someone/sd15-tiny",
        "--sampler",
        "PLMS",
        "--steps",
        "4",
        "--cfg",
        "7.5",
        "--seed",
        "31",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(
      maxPixelDiff(
        await sharp(out).raw().toBuffer(),
        golden("goldens/sd15-tiny/txt2img.safetensors").get("image_uint8"),
      ),
    ).toBeLessThanOrEqual(1);
    // The listing's hash is the one generation writes as A1111's "Model hash".
    const info = await runCli(["info", out, "--json"], { env });
    // ...and its name, the repository's rather than the snapshot folder's (a commit hash).
    expect(JSON.parse(info.stdout).parameters).toMatchObject({ modelHash: m.hash, model: "someone/sd15-tiny" });
  });

  it("lists an AUTOMATIC1111 folder's checkpoint, LoRAs and embeddings with kind, family, size and A1111's short hash", async () => {
    const { env, dir } = emptyEnv();
    const root = a1111Tree(dir);
    const listed = await models(["--models-dir", root], env);
    const byName = new Map(listed.map((m) => [m.name, m]));
    expect([...byName.keys()].sort()).toEqual(["lora-kohya", "sd15-tiny", "styles/wide", "ti-a1111", "wide-ti"]);
    const ckpt = ref("models/sd15-tiny.ldm.safetensors");
    expect(byName.get("sd15-tiny")).toMatchObject({
      kind: "checkpoint",
      family: "sd1",
      source: "a1111",
      location: root,
      size: readFileSync(ckpt).length,
      hash: sha256Of(ckpt).slice(0, 10),
      sha256: sha256Of(ckpt),
    });
    // kohya's metadata names the base model; widths tell the others; the tiny embedding's width is no family's.
    expect(byName.get("lora-kohya")).toMatchObject({
      kind: "lora",
      family: "sd1",
      hash: sha256Of(ref("models/sd15-tiny-adapters/lora-kohya.safetensors")).slice(0, 10),
    });
    expect(byName.get("styles/wide")).toMatchObject({ kind: "lora", family: "sd1" });
    expect(byName.get("ti-a1111")).toMatchObject({ kind: "embedding", family: "unknown" });
    expect(byName.get("wide-ti")).toMatchObject({ kind: "embedding", family: "sd1" });
    expect(byName.get("sd15-tiny")!.aliases).toContain(`sd15-tiny [${sha256Of(ckpt).slice(0, 10)}]`);
  });

  it("lists .ckpt checkpoints and kohya .pt LoRAs where .safetensors ones are, the kind and family read from their tensors", async () => {
    const { env, dir } = emptyEnv();
    const root = join(dir, "stable-diffusion-webui");
    mkdirSync(join(root, "models/Stable-diffusion"), { recursive: true });
    mkdirSync(join(root, "models/Lora"), { recursive: true });
    const resave = (from: string, to: string, layout: "training" | "state-dict") =>
      resaveAsTorch(from, join(root, to), layout);
    const ckpt = resave(ref("models/sd15-tiny.ldm.safetensors"), "models/Stable-diffusion/sd15-tiny.ckpt", "training");
    resave(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"), "models/Lora/kohya.pt", "state-dict");
    const listed = await models(["--models-dir", root], env);
    const byName = new Map(listed.map((m) => [m.name, m]));
    expect([...byName.keys()].sort()).toEqual(["kohya", "sd15-tiny"]);
    expect(byName.get("sd15-tiny")).toMatchObject({
      kind: "checkpoint",
      family: "sd1",
      path: ckpt,
      hash: sha256Of(ckpt).slice(0, 10),
    });
    expect(byName.get("sd15-tiny")!.problem).toBeUndefined();
    // A .pt carries no metadata (kohya's ss_base_model_version lives in .safetensors headers), and the tiny LoRA's
    // 32-wide text is no family's width: a LoRA of unknown family, listed and usable.
    expect(byName.get("kohya")).toMatchObject({ kind: "lora", family: "unknown" });
    expect(byName.get("kohya")!.problem).toBeUndefined();
  });

  it("hashes each file once: a second listing takes the hash remembered by path, size and modification time", async () => {
    const { env, dir } = emptyEnv();
    const root = a1111Tree(dir);
    await models(["--models-dir", root], env);
    const memoFile = join(env.DIFFUSE_CACHE, "hashes.json");
    const memo = JSON.parse(readFileSync(memoFile, "utf8")) as Record<string, { stamp: string; sha256: string }>;
    const key = Object.keys(memo).find((k) => k.endsWith("sd15-tiny.safetensors"))!;
    // Were the file hashed again, the listing would show its real hash instead of this one.
    memo[key]!.sha256 = "ab".repeat(32);
    writeFileSync(memoFile, JSON.stringify(memo));
    const again = await models(["--models-dir", root], env);
    expect(again.find((m) => m.name === "sd15-tiny")!.hash).toBe("ab".repeat(5));
  });

  it("ComfyUI: its own folders and those its extra_model_paths.yaml adds (here, the A1111 installation's)", async () => {
    const { env, dir } = emptyEnv();
    const a1111 = a1111Tree(dir);
    const comfy = join(dir, "ComfyUI");
    mkdirSync(join(comfy, "models", "checkpoints"), { recursive: true });
    symlinkSync(ref("models/sd2v-tiny.ldm.safetensors"), join(comfy, "models", "checkpoints", "comfy-own.safetensors"));
    writeFileSync(
      join(comfy, "extra_model_paths.yaml"),
      [
        "# other tools' models",
        "a111:",
        `    base_path: ${a1111}/   # the webui`,
        "    checkpoints: models/Stable-diffusion",
        "    loras: |",
        "         models/Lora",
        "         models/LyCORIS",
        "    embeddings: embeddings",
        "",
      ].join("\n"),
    );
    const listed = await models(["--models-dir", comfy], env);
    const names = listed.map((m) => `${m.source}:${m.kind}:${m.family}:${m.name}`).sort();
    expect(names).toEqual(
      [
        "comfyui:checkpoint:sd2:comfy-own",
        "comfyui:checkpoint:sd1:sd15-tiny",
        "comfyui:embedding:unknown:ti-a1111",
        "comfyui:embedding:sd1:wide-ti",
        "comfyui:lora:sd1:lora-kohya",
        "comfyui:lora:sd1:styles/wide",
      ].sort(),
    );
  });

  it("InvokeAI: models/<base>/<type>/, the base naming the family where the weights do not", async () => {
    const { env, dir } = emptyEnv();
    const invoke = join(dir, "invokeai");
    mkdirSync(join(invoke, "models", "sd-1", "lora"), { recursive: true });
    symlinkSync(
      ref("models/sd15-tiny-adapters/lora-diffusers.safetensors"),
      join(invoke, "models", "sd-1", "lora", "tiny.safetensors"),
    );
    const listed = await models(["--models-dir", invoke], env);
    expect(listed.map(({ name, kind, family, source }) => ({ name, kind, family, source }))).toEqual([
      { name: "tiny", kind: "lora", family: "sd1", source: "invokeai" },
    ]);
  });
});
