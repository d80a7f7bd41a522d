import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { decodeImage, type RgbImage } from "../../src/image/codec.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import type { WeightSource } from "../../src/weights/weight-source.js";
import {
  applyPolicy,
  CLIP_PREPROCESS,
  findSafetyChecker,
  preprocessConfigFromJson,
  preprocessForClip,
  resizeTarget,
  roundScore,
  SafetyChecker,
  safetyDecision,
  type SafetyResult,
} from "../../src/responsible/safety-checker.js";
import { safetyLayout } from "../../src/models/safety-checker.js";
import { resizeBicubic } from "../../src/responsible/safety/bicubic.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

const SAFETY = "goldens/safety";
const CHECKER = "models/safety-tiny/safety_checker";

function flagged(nsfw: boolean): SafetyResult {
  return { nsfw, conceptScores: [], specialScores: [], badConcepts: nsfw ? [0] : [], specialCare: [] };
}

/** A 64x48 image with sharp edges everywhere (a checkerboard of saturated colours). */
function busyImage(): RgbImage {
  const width = 64,
    height = 48;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const on = ((x >> 2) + (y >> 2)) % 2 === 0;
      data.set(on ? [250, 30, 40] : [20, 200, 240], (y * width + x) * 3);
    }
  return { width, height, data };
}

/** Mean absolute difference between horizontally adjacent pixels: edges and detail. */
function detail(img: RgbImage): number {
  let sum = 0,
    n = 0;
  for (let y = 0; y < img.height; y++)
    for (let x = 1; x < img.width; x++)
      for (let c = 0; c < 3; c++) {
        sum += Math.abs(img.data[(y * img.width + x) * 3 + c]! - img.data[(y * img.width + x - 1) * 3 + c]!);
        n++;
      }
  return sum / n;
}

describe("safety checker decision rule (the reference's forward)", () => {
  it("rounds scores to 3 decimals before comparing with 0: +0.0004 is not bad, +0.001 is", () => {
    expect(roundScore(0.0004)).toBe(0);
    expect(roundScore(0.001)).toBe(0.001);
    expect(roundScore(-0.0004)).toBe(0);
    expect(Object.is(roundScore(-0.0004), -0)).toBe(false);
    const r = safetyDecision([0.2004, 0.301], [0.1], [0.2, 0.3], [0.5]);
    expect(r.conceptScores).toEqual([0, 0.001]);
    expect(r.badConcepts).toEqual([1]);
    expect(r.nsfw).toBe(true);
  });

  it("adds 0.01 to every concept's margin once a special-care concept fires, and to the later special scores", () => {
    const concepts = [0.495, 0.48];
    const thresholds = [0.5, 0.5];
    expect(safetyDecision(concepts, [0.1, 0.2], thresholds, [0.5, 0.5]).nsfw).toBe(false);
    const r = safetyDecision(concepts, [0.6, 0.2, 0.495], thresholds, [0.5, 0.5, 0.5]);
    expect(r.specialCare).toEqual([0, 2]);
    // The third special score is -0.005 + 0.01: the adjustment set by the first applies to the ones after it.
    expect(r.specialScores).toEqual([0.1, -0.29, 0.005]);
    expect(r.conceptScores).toEqual([0.005, -0.01]);
    expect(r.badConcepts).toEqual([0]);
    expect(r.nsfw).toBe(true);
  });
});

describe("CLIP pre-processing geometry", () => {
  it("resizes the shortest side to 224 and truncates the other as transformers does", () => {
    expect(resizeTarget(200, 300, 224)).toEqual({ width: 224, height: 336 });
    expect(resizeTarget(330, 200, 224)).toEqual({ width: 369, height: 224 });
    expect(resizeTarget(160, 96, 224)).toEqual({ width: 373, height: 224 });
    expect(resizeTarget(64, 64, 224)).toEqual({ width: 224, height: 224 });
  });
});

describe("Pillow-compatible bicubic resize", () => {
  it("keeps a flat colour flat when enlarging and shrinking, and copies when the size is unchanged", () => {
    const flat: RgbImage = {
      width: 30,
      height: 20,
      data: new Uint8Array(30 * 20 * 3).map((_, i) => [12, 130, 250][i % 3]!),
    };
    for (const [w, h] of [
      [224, 149],
      [7, 5],
      [30, 224],
    ] as const) {
      const r = resizeBicubic(flat, w, h);
      expect([r.width, r.height, r.data.length]).toEqual([w, h, w * h * 3]);
      expect(r.data.every((v, i) => v === [12, 130, 250][i % 3])).toBe(true);
    }
    const same = resizeBicubic(flat, 30, 20);
    expect(same.data).not.toBe(flat.data);
    expect(Buffer.from(same.data).equals(Buffer.from(flat.data))).toBe(true);
  });

  it("clamps the cubic kernel's overshoot at hard edges to 0..255", () => {
    const edge: RgbImage = {
      width: 4,
      height: 1,
      data: Uint8Array.from([0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]),
    };
    const r = resizeBicubic(edge, 16, 1);
    expect(r.data[0]).toBe(0);
    expect(r.data[r.data.length - 1]).toBe(255);
    expect(Math.min(...r.data)).toBe(0);
    expect(Math.max(...r.data)).toBe(255);
  });
});

describe("safety policies on a flagged image", () => {
  const image = busyImage();
  const results = [flagged(true), flagged(false)];

  it('"block" replaces the flagged image with black of the same size and leaves the other alone', async () => {
    const [a, b] = await applyPolicy([image, image], results, "block");
    expect(a!.action).toBe("blocked");
    expect(a!.image.width).toBe(image.width);
    expect(a!.image.height).toBe(image.height);
    expect(a!.image.data.length).toBe(image.data.length);
    expect(a!.image.data.every((v) => v === 0)).toBe(true);
    expect(b!.action).toBe("none");
    expect(b!.image).toBe(image);
  });

  it('"block" is the default, as in the reference', async () => {
    const [a] = await applyPolicy([image], [flagged(true)]);
    expect(a!.action).toBe("blocked");
  });

  it('"blur" keeps the size and overall colour but wipes out the detail', async () => {
    const [a, b] = await applyPolicy([image, image], results, "blur");
    expect(a!.action).toBe("blurred");
    expect([a!.image.width, a!.image.height]).toEqual([image.width, image.height]);
    expect(detail(a!.image)).toBeLessThan(detail(image) / 20);
    const mean = (img: RgbImage): number => img.data.reduce((s, v) => s + v, 0) / img.data.length;
    expect(Math.abs(mean(a!.image) - mean(image))).toBeLessThan(12);
    expect(b!.image).toBe(image);
  });

  it('"flag" keeps the pixels and marks the image', async () => {
    const [a, b] = await applyPolicy([image, image], results, "flag");
    expect(a!.action).toBe("flagged");
    expect(a!.nsfw).toBe(true);
    expect(Buffer.from(a!.image.data).equals(Buffer.from(image.data))).toBe(true);
    expect(b!.action).toBe("none");
    expect(b!.nsfw).toBe(false);
  });

  it("refuses an unknown policy with the list of known ones", async () => {
    await expect(applyPolicy([image], [flagged(true)], "hide" as never)).rejects.toThrow(/block, blur, flag/);
  });
});

describe("safety checker loading", () => {
  it("says where it looked when the path does not exist", async () => {
    await expect(SafetyChecker.load("/nonexistent/safety_checker")).rejects.toThrow(
      /safety checker not found at \/nonexistent/,
    );
  });
});

describe.skipIf(!HAVE_REFERENCE)("safety checker parity (safety-tiny, diffusers StableDiffusionSafetyChecker)", () => {
  const meta = HAVE_REFERENCE
    ? (JSON.parse(readFileSync(ref(SAFETY, "safety.json"), "utf8")) as {
        images: string[];
        has_nsfw_concepts: boolean[];
      })
    : { images: [], has_nsfw_concepts: [] };
  let checker: SafetyChecker;
  beforeAll(async () => {
    checker = await SafetyChecker.load(ref(CHECKER), { threads: 1 });
  });
  afterAll(async () => {
    await checker?.release();
  });

  it("finds safety_checker/ in a diffusers model folder and loads from there, from the folder, or from the file", async () => {
    expect(findSafetyChecker(ref("models/safety-tiny"))).toBe(ref(CHECKER));
    expect(findSafetyChecker(ref(CHECKER))).toBeUndefined();
    for (const path of [ref("models/safety-tiny"), ref(CHECKER, "model.safetensors")]) {
      const c = await SafetyChecker.load(path, { threads: 1 });
      expect(c.config).toEqual(checker.config);
      await c.release();
    }
  });

  it("reads the feature extractor's pre-processing beside the checker", () => {
    const pre = preprocessConfigFromJson(
      JSON.parse(readFileSync(ref("models/safety-tiny/feature_extractor/preprocessor_config.json"), "utf8")),
    );
    expect(pre).toEqual(CLIP_PREPROCESS);
    expect(checker.preprocess).toEqual(CLIP_PREPROCESS);
    expect(checker.conceptThresholds.length).toBe(17);
    expect(checker.specialThresholds.length).toBe(3);
  });

  it("from the reference's clip_input: image embeddings within 1e-4 and exactly the reference's flags", async () => {
    const gold = golden(SAFETY, "safety.safetensors");
    const batch = gold.shape("clip_input")[0]!;
    const e = await checker.embed(gold.get("clip_input"), batch);
    const embeds = relErr(e.imageEmbeds, gold.get("image_embeds"));
    const pooled = relErr(e.pooled, gold.get("pooled_output"));
    const concept = relErr(e.conceptCos, gold.get("concept_cos"));
    const special = relErr(e.specialCos, gold.get("special_cos"));
    console.log(
      `safety rel err: embeds ${embeds.toExponential(2)}, pooled ${pooled.toExponential(2)}, concept cos ${concept.toExponential(2)}, special cos ${special.toExponential(2)}`,
    );
    expect(embeds).toBeLessThan(1e-4);
    expect(pooled).toBeLessThan(1e-4);
    expect(concept).toBeLessThan(1e-4);
    expect(special).toBeLessThan(1e-4);
    expect(Array.from(checker.conceptThresholds)).toEqual(Array.from(gold.get("concept_thresholds")));
    expect(Array.from(checker.specialThresholds)).toEqual(Array.from(gold.get("special_thresholds")));
    const results = checker.decide(e);
    expect(results.map((r) => r.nsfw)).toEqual(meta.has_nsfw_concepts);
    // image2 is flagged only through the special-care adjustment.
    expect(results[2]!.specialCare.length).toBeGreaterThan(0);
  });

  it("the decision rule on the reference's own cosine similarities gives exactly its flags", () => {
    const gold = golden(SAFETY, "safety.safetensors");
    const cos = gold.get("concept_cos"),
      sp = gold.get("special_cos");
    const ct = gold.get("concept_thresholds"),
      st = gold.get("special_thresholds");
    const flags = meta.images.map(
      (_, i) => safetyDecision(cos.subarray(i * 17, (i + 1) * 17), sp.subarray(i * 3, (i + 1) * 3), ct, st).nsfw,
    );
    expect(flags).toEqual(meta.has_nsfw_concepts);
  });

  /** Mean absolute difference to the reference's clip_input, per image and over all. */
  async function preprocessError(resampler: "pillow" | "sharp"): Promise<{ perImage: number[]; all: number }> {
    const want = golden(SAFETY, "safety.safetensors").get("clip_input");
    const images = await Promise.all(meta.images.map((name) => decodeImage(ref(SAFETY, name))));
    const ours = await preprocessForClip(images, checker.preprocess, resampler);
    expect(ours.length).toBe(want.length);
    const per = want.length / images.length;
    const perImage = images.map((_, b) => {
      let s = 0;
      for (let i = b * per; i < (b + 1) * per; i++) s += Math.abs(ours[i]! - want[i]!);
      return s / per;
    });
    return { perImage, all: perImage.reduce((a, b) => a + b, 0) / perImage.length };
  }

  it("from the PNGs (decoded by sharp) through our own pre-processing: clip_input within 2e-2 mean abs of the reference's", async () => {
    const { perImage, all } = await preprocessError("pillow");
    console.log(
      `clip_input mean abs err (Pillow-exact bicubic) per image: ${perImage.map((e) => e.toExponential(2)).join(", ")}; all ${all.toExponential(2)}`,
    );
    expect(all).toBeLessThan(2e-2);
    for (const e of perImage) expect(e).toBeLessThan(2e-2);
    // In fact the resize reproduces Pillow's bytes, so the tensors agree to float rounding.
    expect(all).toBeLessThan(1e-6);
  });

  it("the sharp resampler agrees with Pillow when shrinking, and is measured (not held to the bar) when enlarging", async () => {
    const { perImage, all } = await preprocessError("sharp");
    console.log(
      `clip_input mean abs err (sharp cubic) per image: ${perImage.map((e) => e.toExponential(2)).join(", ")}; all ${all.toExponential(2)}`,
    );
    // image1 is 512x512 (shrunk), image5 256x256 (shrunk): libvips' reduce is Pillow's convolution there.
    expect(perImage[1]).toBeLessThan(2e-2);
    expect(perImage[5]).toBeLessThan(2e-2);
  });

  it("checks decoded images end to end (pre-processing, network, rule) and blocks what it flags", async () => {
    const images = await Promise.all(meta.images.map((name) => decodeImage(ref(SAFETY, name))));
    const results = await checker.check(images);
    expect(results).toHaveLength(images.length);
    expect(results.map((r) => r.nsfw)).toEqual(meta.has_nsfw_concepts);
    const outcomes = await applyPolicy(images, results, "block");
    outcomes.forEach((o, i) => expect(o.action).toBe(results[i]!.nsfw ? "blocked" : "none"));
  });

  it("finds the checker's modules under the other key layouts (a safety_checker. prefix, a single vision_model.)", () => {
    const base = fileWeightSource(SafetensorsFile.open(ref(CHECKER, "model.safetensors")));
    const renamed = (rename: (k: string) => string): WeightSource => {
      const back = new Map(base.keys().map((k) => [rename(k), k]));
      return {
        origin: "renamed",
        keys: () => [...back.keys()],
        has: (n) => back.has(n),
        shape: (n) => base.shape(back.get(n)!),
        dtype: (n) => base.dtype(back.get(n)!),
        float32: (n) => base.float32(back.get(n)!),
      };
    };
    const prefixed = safetyLayout(renamed((k) => `safety_checker.${k}`));
    expect(prefixed.tower.prefix).toBe("safety_checker.vision_model.vision_model");
    expect(prefixed.projection.prefix).toBe("safety_checker.visual_projection");
    const flat = safetyLayout(renamed((k) => k.replace(/^vision_model\.vision_model\./, "vision_model.")));
    expect(flat.tower.prefix).toBe("vision_model");
    expect(flat.root.prefix).toBe("");
    expect(() => safetyLayout(renamed((k) => k.replace("concept_embeds", "concepts")))).toThrow(
      /not a Stable Diffusion safety checker/,
    );
  });
});
