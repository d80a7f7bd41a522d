import { describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { loraTags } from "../../src/pipeline/lora-tags.js";
import { PromptPolicy } from "../../src/responsible/prompt-policy.js";
import { golden, HAVE_REFERENCE, maxPixelDiff, ref, relErr } from "../helpers/fixtures.js";

const ADAPTERS = "models/sd15-tiny-adapters";
const PROMPT = "a photo of an astronaut riding a horse on mars";

describe("<lora:NAME:W> tags in prompts, as A1111 writes them", () => {
  it("reads the name and A1111's multipliers: W for both, W_te:W_unet, te= and unet=, 1 without a weight; <lyco:> alike", () => {
    const { texts, loras } = loraTags([
      "a <lora:watercolor:0.8>cat, <lora:b:0.5:0.25> <lyco:c> <lora:d:1:unet=0.3> <lora:e:te=0:unet=2>",
      "blurry <lora:f:-1>",
    ]);
    expect(texts).toEqual(["a cat,    ", "blurry "]);
    expect(loras).toEqual([
      { name: "watercolor", textEncoder: 0.8, unet: 0.8 },
      { name: "b", textEncoder: 0.5, unet: 0.25 },
      { name: "c", textEncoder: 1, unet: 1 },
      { name: "d", textEncoder: 1, unet: 0.3 },
      { name: "e", textEncoder: 0, unet: 2 },
      { name: "f", textEncoder: -1, unet: -1 },
    ]);
  });

  it('cuts tags where they stand, with nothing in their place ("nu<lora:x:1>de" is "nude")', () => {
    expect(loraTags(["nu<lora:x:1>de"]).texts).toEqual(["nude"]);
  });

  it("refuses a weight that is not a number, a missing name, other network types and A1111's dyn, naming the tag", () => {
    expect(() => loraTags(["<lora:x:abc>"])).toThrow(/<lora:x:abc>: the weight "abc" is not a number/);
    expect(() => loraTags(["<lora::1>"])).toThrow(/no LoRA name/);
    expect(() => loraTags(["<hypernet:x:1>"])).toThrow(/"hypernet" networks are not supported/);
    expect(() => loraTags(["<lora:x:1:1:8>"])).toThrow(/A1111's dyn/);
  });

  it("the prompt policy reads prompts with the tags cut as the pipeline cuts them; a regex still reads the tag as written", () => {
    const policy = PromptPolicy.parse(JSON.stringify([{ term: "nude", reason: "no nudity" }]));
    expect(policy.checkPrompt("a nu<lora:style:1>de figure")?.reason).toBe("no nudity");
    expect(policy.checkPrompt("a portrait <lora:nude-style:1>")).toBeUndefined();
    const byName = PromptPolicy.parse(JSON.stringify([{ regex: "<lora:celebrity", reason: "no real people" }]));
    expect(byName.checkPrompt("a portrait <lora:celebrity-x:0.9>")?.reason).toBe("no real people");
  });
});

describe.skipIf(!HAVE_REFERENCE)("a generation with <lora:lora-kohya:0.8> on sd15-tiny", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lora-prompt-"));
  const loraDir = mkdtempSync(join(tmpdir(), "diffuse-loras-"));
  copyFileSync(ref(ADAPTERS, "lora-kohya.safetensors"), join(loraDir, "lora-kohya.safetensors"));

  it("reproduces diffusers' run with the LoRA fused at 0.8 step by step; the infotext keeps the tag and adds Lora hashes", async () => {
    const pipe = await loadPipeline(ref("models/sd15-tiny"), { cacheDir, threads: 1, loraDir, safetyChecker: false });
    try {
      const gold = golden("goldens/sd15-tiny-lora/txt2img_kohya_0.8.safetensors");
      const perStep = gold.get("latents_after_step");
      const n = 4 * 8 * 8;
      const errors: number[] = [];
      const r = await pipe.generate({
        prompt: `${PROMPT} <lora:lora-kohya:0.8>`,
        negativePrompt: "",
        steps: 4,
        cfgScale: 7.5,
        seed: 31,
        sampler: "pndm",
        width: 64,
        height: 64,
        onStep: (e) => errors.push(relErr(e.latents, perStep.subarray((e.step - 1) * n, e.step * n))),
      });
      expect(errors).toHaveLength(5);
      for (const e of errors) expect(e).toBeLessThan(1e-4);
      expect(maxPixelDiff(r.images[0]!.image.data, gold.get("image_uint8"))).toBeLessThanOrEqual(1);
      expect(r.info.split("\n")[0]).toBe(`${PROMPT} <lora:lora-kohya:0.8>`);
      const bytes = readFileSync(join(loraDir, "lora-kohya.safetensors"));
      const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
      const { createHash } = await import("node:crypto");
      const addnet = createHash("sha256").update(bytes.subarray(dataStart)).digest("hex");
      expect(r.info).toContain(`, Lora hashes: "lora-kohya: ${addnet.slice(0, 12)}"`);
      expect(r.warnings).toEqual([]);

      // The same LoRA asked for by the caller, by bytes: the same image; and without it, the model's own again.
      const again = await pipe.generate({
        prompt: PROMPT,
        negativePrompt: "",
        steps: 4,
        cfgScale: 7.5,
        seed: 31,
        sampler: "pndm",
        width: 64,
        height: 64,
        loras: [{ bytes, name: "from-bytes", weight: 0.8 }],
      });
      expect(Buffer.from(again.images[0]!.image.data).equals(Buffer.from(r.images[0]!.image.data))).toBe(true);
      expect(again.info).toContain(`Lora hashes: "from-bytes: ${addnet.slice(0, 12)}"`);
      const plain = await pipe.generate({
        prompt: PROMPT,
        negativePrompt: "",
        steps: 4,
        cfgScale: 7.5,
        seed: 31,
        sampler: "pndm",
        width: 64,
        height: 64,
      });
      expect(
        maxPixelDiff(plain.images[0]!.image.data, golden("goldens/sd15-tiny/txt2img.safetensors").get("image_uint8")),
      ).toBeLessThanOrEqual(1);
      expect(plain.info).not.toContain("Lora hashes");
    } finally {
      await pipe.close();
    }
  });

  it("an unknown name lists the folder's close matches, before any compute", async () => {
    const pipe = await loadPipeline(ref("models/sd15-tiny"), { cacheDir, threads: 1, loraDir, safetyChecker: false });
    try {
      let steps = 0;
      await expect(
        pipe.generate({ prompt: "a cat <lora:lora-kohy:1>", steps: 2, width: 64, height: 64, onStep: () => steps++ }),
      ).rejects.toThrow(
        new RegExp(
          `no LoRA named "lora-kohy" in ${loraDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} .*did you mean "lora-kohya"\\?`,
        ),
      );
      expect(steps).toBe(0);
    } finally {
      await pipe.close();
    }
  });
});
