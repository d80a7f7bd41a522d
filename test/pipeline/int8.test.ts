import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { graphDigest } from "../../src/pipeline/networks.js";
import type { RgbImage } from "../../src/image/codec.js";
import { storedForms } from "../helpers/cache-entry.js";

const MODEL = join(import.meta.dirname, "../../models/tiny-shapes");

function psnr(a: RgbImage, b: RgbImage): number {
  let se = 0;
  for (let i = 0; i < a.data.length; i++) se += (a.data[i]! - b.data[i]!) ** 2;
  return 10 * Math.log10((255 * 255) / (se / a.data.length));
}

describe("precision int8: the UNet and VAE decoder with int8 layers", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-int8-"));
  const params = { prompt: "a big red star on a blue background", seed: 3, steps: 12 };
  /** One image at int8 from a fresh load, with the load's status messages. */
  const generateInt8 = async () => {
    const status: string[] = [];
    const pipe = await loadPipeline(MODEL, {
      cacheDir,
      threads: 1,
      precision: "int8",
      onStatus: (m) => status.push(m),
    });
    const image = (await pipe.generate(params)).images[0]!.image;
    await pipe.close();
    return { image, status };
  };

  it("calibrates once, generates within 30 dB PSNR of fp32, and keeps both precisions' entries apart", async () => {
    const { image: q, status } = await generateInt8();
    expect(status.filter((m) => m.startsWith("calibrating"))).toHaveLength(2); // the UNet and the VAE decoder
    const fp32 = await loadPipeline(MODEL, { cacheDir, threads: 1 });
    const f = (await fp32.generate(params)).images[0]!.image;
    await fp32.close();
    // The same picture, not bit for bit: 30 dB is the bar for decoded images (measured here: ~40 dB).
    expect(psnr(q, f)).toBeGreaterThan(30);
    expect(psnr(q, f)).toBeLessThan(100); // int8 did run: the images are not identical

    const entries = readdirSync(cacheDir);
    const count = (re: RegExp) => entries.filter((e) => re.test(e)).length;
    expect(count(/^[0-9a-f]{24}-int8-unet-[0-9a-f]{20}$/)).toBe(1);
    expect(count(/^[0-9a-f]{24}-unet-[0-9a-f]{20}$/)).toBe(1);
    expect(count(/^[0-9a-f]{24}-int8-vae_decoder-[0-9a-f]{20}$/)).toBe(1);
    expect(count(/^[0-9a-f]{24}-vae_decoder-[0-9a-f]{20}$/)).toBe(1);
    // The text encoder's int8 form has its weights in int8 (int8-text-encoder.test.ts): an entry of its own.
    expect(count(/^[0-9a-f]{24}-int8-text_encoder-[0-9a-f]{20}$/)).toBe(1);
    expect(count(/^[0-9a-f]{24}-text_encoder-[0-9a-f]{20}$/)).toBe(1);
    expect(count(/-int8-unet-ranges-.*\.json$/)).toBe(1);
    expect(count(/-calibrate-/)).toBe(0); // the observed fp32 graphs are removed after calibration

    // In the int8 UNet, the linear layers kept fp32 for how little work they are (time embeddings, cross-attention's
    // keys and values) are stored as int8 (weight-only); those kept for their error (proj_in, proj_out) are not.
    const unet = storedForms(join(cacheDir, entries.find((e) => /^[0-9a-f]{24}-int8-unet-[0-9a-f]{20}$/.test(e))!));
    const format = (part: string) => {
      const found = [...unet].filter(([name]) => name.includes(part) && name.endsWith(".weight"));
      expect(found.length).toBeGreaterThan(0);
      return new Set(found.map(([, s]) => s.format));
    };
    expect(format(".time_emb_proj.")).toEqual(new Set(["i8-cols"]));
    expect(format("time_embedding.linear_1.")).toEqual(new Set(["i8-cols"]));
    expect(format(".attn2.to_k.")).toEqual(new Set(["i8-cols"]));
    expect(format(".proj_out.")).not.toContain("i8-cols");
    expect(format(".proj_in.")).not.toContain("i8-cols");

    const { image: r, status: again } = await generateInt8();
    expect(again.filter((m) => m.startsWith("calibrating") || m.startsWith("building"))).toEqual([]);
    expect(psnr(r, q)).toBe(Number.POSITIVE_INFINITY); // the kept ranges give the same graph
  }, 120_000);

  it("puts the precision into the cache key", () => {
    const g = new GraphBuilder("g");
    g.output(g.relu(g.input("x", DataType.FLOAT, [1], [1])), "y", [1]);
    expect(graphDigest(g, 16, "code", "int8")).not.toBe(graphDigest(g, 16, "code", "fp32"));
    expect(graphDigest(g, 16, "code")).toBe(graphDigest(g, 16, "code", "fp32"));
  });
});
