import { describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { encodeSafetensors, f16Bytes } from "../weights/safetensors-writer.js";
import { runCli } from "../helpers/cli.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-cli-lora-cache-"));
const env = { DIFFUSE_CACHE: cacheDir };
const PROMPT = "a photo of an astronaut riding a horse on mars";

/** A kohya-named LoRA module: down [rank, inputs], up [outputs, rank], alpha. */
function module(name: string, outputs: number, inputs: number, rank = 4) {
  return [
    {
      name: `${name}.lora_down.weight`,
      dtype: "F16" as const,
      shape: [rank, inputs],
      data: f16Bytes(new Float32Array(rank * inputs).fill(0.01)),
    },
    {
      name: `${name}.lora_up.weight`,
      dtype: "F16" as const,
      shape: [outputs, rank],
      data: f16Bytes(new Float32Array(outputs * rank).fill(0.01)),
    },
    { name: `${name}.alpha`, dtype: "F16" as const, shape: [], data: f16Bytes([rank]) },
  ];
}

describe.skipIf(!HAVE_REFERENCE)("diffuse generate with LoRAs", () => {
  const model = ref("models/sd15-tiny");
  const loraDir = mkdtempSync(join(tmpdir(), "diffuse-cli-loras-"));
  copyFileSync(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"), join(loraDir, "lora-kohya.safetensors"));
  const base = [
    "--model",
    model,
    "--lora-dir",
    loraDir,
    "--sampler",
    "PLMS",
    "--steps",
    "4",
    "--cfg",
    "7.5",
    "--seed",
    "31",
  ];

  it("<lora:lora-kohya:0.8> in the prompt reproduces the reference image within 1/255; diffuse info shows the tag and Lora hashes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-lora-"));
    const out = join(dir, "lora.png");
    const r = await runCli(["generate", `${PROMPT} <lora:lora-kohya:0.8>`, ...base, "-o", out, "--json"], { env });
    expect(r.stderr).not.toMatch(/error|warning/i);
    expect(r.code).toBe(0);
    const png = await sharp(out).raw().toBuffer();
    const want = golden("goldens/sd15-tiny-lora/txt2img_kohya_0.8.safetensors").get("image_uint8");
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(png[i]! - want[i]!));
    expect(max).toBeLessThanOrEqual(1);
    const info = JSON.parse((await runCli(["info", out, "--json"])).stdout).parameters;
    expect(info.prompt).toBe(`${PROMPT} <lora:lora-kohya:0.8>`);
    expect(info.extra["Lora hashes"]).toMatch(/^lora-kohya: [0-9a-f]{12}$/);

    // --lora NAME:W is the same LoRA at the same weight: the same pixels, and no new compile cache entry.
    const entries = readdirSync(cacheDir).filter((n) => !n.startsWith("."));
    const out2 = join(dir, "flag.png");
    const r2 = await runCli(["generate", PROMPT, ...base, "--lora", "lora-kohya:0.8", "-o", out2], { env });
    expect(r2.code).toBe(0);
    expect((await sharp(out2).raw().toBuffer()).equals(png)).toBe(true);
    expect(readdirSync(cacheDir).filter((n) => !n.startsWith("."))).toEqual(entries);
  });

  const bad = mkdtempSync(join(tmpdir(), "diffuse-cli-bad-loras-"));
  // A module whose down factor reads 20 inputs where the model's to_q takes 16.
  writeFileSync(
    join(bad, "wrong-shape.safetensors"),
    encodeSafetensors(module("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 16, 20), {
      ss_base_model_version: "sd_v1",
    }),
  );
  const kohya = readFileSync(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"));
  writeFileSync(join(bad, "truncated.safetensors"), kohya.subarray(0, Math.floor(kohya.length / 2)));
  writeFileSync(
    join(bad, "xl-style.safetensors"),
    encodeSafetensors([...module("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280)], {
      ss_base_model_version: "sdxl_base_v1-0",
    }),
  );
  copyFileSync(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"), join(bad, "lora-kohya.safetensors"));
  const cases = [
    {
      what: "a LoRA with wrong shapes",
      tag: "wrong-shape",
      message:
        /wrong-shape\.safetensors: module "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": up \[16,4\] @ down \[4,20\] does not fit the model's weight \[16,16\]/,
    },
    { what: "a truncated file", tag: "truncated", message: /truncated\.safetensors: .*(truncated|past the end)/ },
    {
      what: "an unknown name",
      tag: "lora-kohy",
      message: /no LoRA named "lora-kohy" in .* did you mean "lora-kohya"\?/,
    },
    {
      what: "a LoRA for another family",
      tag: "xl-style",
      message:
        /xl-style\.safetensors: a LoRA for Stable Diffusion XL \(ss_base_model_version sdxl_base_v1-0\), but the model is Stable Diffusion 1\.x/,
    },
  ];
  for (const c of cases) {
    it(`${c.what}: exit 2, one line naming the file and the problem, nothing written`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-lora-bad-"));
      const out = join(dir, "never.png");
      const r = await runCli(
        ["generate", `a cat <lora:${c.tag}:1>`, "--model", model, "--lora-dir", bad, "--steps", "2", "-o", out],
        { env },
      );
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^diffuse: /);
      expect(lines[0]).toMatch(c.message);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  it("--lora-dir that does not exist is refused up front", async () => {
    const r = await runCli(
      ["generate", "a cat", "--model", model, "--lora-dir", join(bad, "nope"), "-o", join(bad, "x.png")],
      { env },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--lora-dir .*nope: no such folder/);
  });
});
