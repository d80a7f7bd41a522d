/**
 * A1111's sampler knobs through the pipeline: checked before any compute (resolveParams), the eta noise seed delta
 * seeding the sampler's noise and only that (on the embedded model), and the infotext's "Eta" / "ENSD" written as
 * A1111 writes them and read back into the request that makes the same image.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { InputError } from "../../src/errors.js";
import { parseInfotext } from "../../src/image/infotext.js";
import { requestFromInfotext } from "../../src/pipeline/infotext-request.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { type GenerateParams, resolveParams } from "../../src/pipeline/params.js";
import type { StableDiffusionPipeline } from "../../src/pipeline/stable-diffusion.js";
import { MAX_SEED } from "../../src/random/seed.js";
import { TorchGenerator } from "../../src/random/torch-generator.js";

const defaults = { size: 64, randomSeed: () => 1n };

describe("resolveParams checks the sampler knobs before any compute", () => {
  it("records eta as asked, and s_noise and ENSD when not their defaults", () => {
    const p = resolveParams(
      { prompt: "x", sampler: "Euler a", eta: 0.4, sNoise: 0.9, etaNoiseSeedDelta: 31337 },
      defaults,
    );
    expect([p.eta, p.sNoise, p.etaNoiseSeedDelta]).toEqual([0.4, 0.9, 31337]);
    const plain = resolveParams({ prompt: "x", sNoise: 1, etaNoiseSeedDelta: 0 }, defaults);
    expect([plain.eta, plain.sNoise, plain.etaNoiseSeedDelta]).toEqual([undefined, undefined, undefined]);
  });

  it("records the churn only when s_churn is above 0 (s_tmin and s_tmax bound it and do nothing alone)", () => {
    const p = resolveParams({ prompt: "x", sampler: "Euler", sChurn: 0.5, sTmin: 0.1, sTmax: 10 }, defaults);
    expect([p.sChurn, p.sTmin, p.sTmax]).toEqual([0.5, 0.1, 10]);
    const off = resolveParams({ prompt: "x", sampler: "Euler", sChurn: 0, sTmin: 0.1, sTmax: 10 }, defaults);
    expect([off.sChurn, off.sTmin, off.sTmax]).toEqual([undefined, undefined, undefined]);
    expect(() => resolveParams({ prompt: "x", sChurn: -1 }, defaults)).toThrow(/s_churn -1 is invalid/);
    expect(() => resolveParams({ prompt: "x", sChurn: 1, sTmax: Infinity }, defaults)).toThrow(/s_tmax/);
  });

  it("refuses a negative or non-finite eta or s_noise, and an ENSD that is not a whole number", () => {
    expect(() => resolveParams({ prompt: "x", eta: -1 }, defaults)).toThrow(/eta -1 is invalid/);
    expect(() => resolveParams({ prompt: "x", sNoise: Number.NaN }, defaults)).toThrow(/s_noise null is invalid/);
    expect(() => resolveParams({ prompt: "x", etaNoiseSeedDelta: 1.5 }, defaults)).toThrow(InputError);
    expect(() => resolveParams({ prompt: "x", etaNoiseSeedDelta: -3 }, defaults)).toThrow(/ENSD/);
  });

  it("refuses an ENSD whose seed + delta for the last image is past the largest seed", () => {
    expect(() =>
      resolveParams({ prompt: "x", seed: MAX_SEED - 10n, batchSize: 2, etaNoiseSeedDelta: 10 }, defaults),
    ).toThrow(/needs the seed 18446744073709551616 for the sampler's noise/);
    expect(() => resolveParams({ prompt: "x", seed: MAX_SEED - 10n, etaNoiseSeedDelta: 10 }, defaults)).not.toThrow();
  });
});

const BASE: GenerateParams = {
  prompt: "a red circle",
  steps: 3,
  sampler: "Euler a",
  width: 64,
  height: 64,
  seed: 5,
  jobId: "sampler-knobs-test",
};
const same = (a: { image: { data: Uint8Array } }, b: { image: { data: Uint8Array } }) =>
  Buffer.from(a.image.data).equals(Buffer.from(b.image.data));

describe("sampler knobs on the embedded model", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-knobs-"));
  let pipe: StableDiffusionPipeline | undefined;
  const load = async () => (pipe ??= await loadPipeline(defaultModelPath(), { cacheDir, threads: 1 }));
  afterAll(async () => pipe?.close());
  const generate = async (p: Partial<GenerateParams>, latents?: Float32Array[]) =>
    (
      await (
        await load()
      ).generate({
        ...BASE,
        ...p,
        ...(latents ? { onStep: (e) => latents.push(Float32Array.from(e.latents)) } : {}),
      })
    ).images;

  it("ENSD seeds the sampler's noise with seed + delta and leaves the initial noise the seed's (A1111's ImageRNG)", async () => {
    const withDelta: Float32Array[] = [];
    const without: Float32Array[] = [];
    await generate({ etaNoiseSeedDelta: 31337 }, withDelta);
    await generate({}, without);
    // Same initial noise and model call, so after Euler a's first step the latents differ only by the step's fresh
    // noise times sigma_up: the seed + delta generator's first draw against the seed's second (its first is the
    // initial noise).
    const n = without[0]!.length;
    const zDelta = new TorchGenerator(5n + 31337n).randn([n]);
    const seeded = new TorchGenerator(5n);
    seeded.randn([n]);
    const zSeed = seeded.randn([n]);
    const d = withDelta[0]!.map((v, k) => v - without[0]![k]!);
    const dz = zDelta.map((v, k) => v - zSeed[k]!);
    let dot = 0;
    let zz = 0;
    for (let k = 0; k < n; k++) {
      dot += d[k]! * dz[k]!;
      zz += dz[k]! * dz[k]!;
    }
    const sigmaUp = dot / zz;
    expect(sigmaUp).toBeGreaterThan(0.1);
    let residual = 0;
    let norm = 0;
    for (let k = 0; k < n; k++) {
      residual += (d[k]! - sigmaUp * dz[k]!) ** 2;
      norm += d[k]! ** 2;
    }
    expect(Math.sqrt(residual / norm)).toBeLessThan(1e-4);
  });

  it("with eta 0 Euler a draws no noise that matters: ENSD changes nothing, and the infotext says Eta 0", async () => {
    const [a] = await generate({ eta: 0 });
    const [b] = await generate({ eta: 0, etaNoiseSeedDelta: 31337 });
    expect(same(a!, b!)).toBe(true);
    const [plain] = await generate({});
    expect(same(a!, plain!)).toBe(false);
    expect(parseInfotext(a!.infotext).extra["Eta"]).toBe("0");
    // ENSD changed nothing, so the infotext leaves it out, as A1111's (which writes it only where the sampler uses it).
    expect(b!.infotext).not.toMatch(/ENSD/);
  });

  it("writes Eta and ENSD as A1111 does and reads them back into the request that makes the same image", async () => {
    const [image] = await generate({ eta: 0.6, sNoise: 0.8, etaNoiseSeedDelta: 31337 });
    const info = parseInfotext(image!.infotext);
    expect(info.extra["Eta"]).toBe("0.6");
    expect(info.extra["Sigma noise"]).toBe("0.8");
    expect(info.extra["ENSD"]).toBe("31337");
    const request = requestFromInfotext(info);
    expect(request).toMatchObject({ eta: 0.6, sNoise: 0.8, etaNoiseSeedDelta: 31337 });
    const [again] = await generate({ ...request, jobId: BASE.jobId });
    expect(same(again!, image!)).toBe(true);
    // A default leaves its field out, as A1111's infotext does.
    const [plain] = await generate({ eta: 1 });
    expect(plain!.infotext).not.toMatch(/Eta|ENSD|Sigma noise/);
  });

  it("Euler with churn: changes the image, writes Sigma churn / tmin / tmax / noise, and they make it again", async () => {
    const churn = { sampler: "Euler", sChurn: 0.8, sTmin: 0.05, sTmax: 20, sNoise: 1.01 };
    const [image] = await generate(churn);
    const [plain] = await generate({ sampler: "Euler" });
    expect(same(image!, plain!)).toBe(false);
    const info = parseInfotext(image!.infotext);
    expect([info.extra["Sigma churn"], info.extra["Sigma tmin"], info.extra["Sigma tmax"]]).toEqual([
      "0.8",
      "0.05",
      "20",
    ]);
    expect(info.extra["Sigma noise"]).toBe("1.01");
    const request = requestFromInfotext(info);
    expect(request).toMatchObject({ sChurn: 0.8, sTmin: 0.05, sTmax: 20, sNoise: 1.01 });
    const [again] = await generate({ ...request, jobId: BASE.jobId });
    expect(same(again!, image!)).toBe(true);
    // Euler a has no churn in A1111: the knobs change nothing there.
    const [ancestral] = await generate({ sChurn: 0.8 });
    const [ancestralPlain] = await generate({});
    expect(same(ancestral!, ancestralPlain!)).toBe(true);
  });

  it("reads A1111's other spellings: Eta DDIM, and Eta noise seed delta", () => {
    const info = parseInfotext(
      "a cat\nSteps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 64x64, Eta DDIM: 0.3, Eta noise seed delta: 31337",
    );
    expect(requestFromInfotext(info)).toMatchObject({ eta: 0.3, etaNoiseSeedDelta: 31337 });
  });
});
