import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { buildInfotext, parseInfotext, splitInfotext, type Infotext } from "../../src/image/infotext.js";

const basic: Infotext = {
  prompt: "a cat",
  negativePrompt: "",
  steps: 20,
  sampler: "Euler a",
  cfgScale: 7,
  seed: 42n,
  width: 512,
  height: 512,
  modelHash: "abcdef1234",
  model: "name",
  denoisingStrength: 0.6,
  clipSkip: 2,
  rng: "CPU",
  extra: {},
};

/** Written by hand in the shape AUTOMATIC1111 1.10 produces, including its quoting of values with commas/colons. */
const A1111_EXAMPLE = [
  "masterpiece, best quality, (a lighthouse at dusk:1.2),",
  "dramatic clouds, <lora:add_detail:0.6>",
  "oil painting",
  "Negative prompt: lowres, bad anatomy,",
  "worst quality",
  'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned.safetensors, Denoising strength: 0.45, Clip skip: 2, RNG: CPU, Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "easynegative: c74b4e810b03, badhandv4: 5e40d722fc3d", Note: "say \\"hi\\", please", Version: v1.10.1',
].join("\n");

describe("A1111 infotext", () => {
  it("builds the A1111 layout with keys in A1111 order", () => {
    expect(buildInfotext(basic)).toBe(
      "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: abcdef1234, Model: name, Denoising strength: 0.6, Clip skip: 2, RNG: CPU",
    );
  });

  it("writes the negative prompt line only when there is one", () => {
    const text = buildInfotext({
      ...basic,
      negativePrompt: "blurry, lowres",
      modelHash: undefined,
      model: undefined,
      denoisingStrength: undefined,
      clipSkip: undefined,
      rng: undefined,
    });
    expect(text).toBe(
      "a cat\nNegative prompt: blurry, lowres\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512",
    );
  });

  it("places extra keys at A1111's positions, unknown ones after the known ones and Version last", () => {
    const text = buildInfotext({
      ...basic,
      scheduleType: "Karras",
      extra: { Version: "v1.10.1", "Hires upscaler": "Latent" },
    });
    const keys = text
      .split("\n")
      .at(-1)!
      .split(", ")
      .map((kv) => kv.split(":")[0]);
    expect(keys).toEqual([
      "Steps",
      "Sampler",
      "Schedule type",
      "CFG scale",
      "Seed",
      "Size",
      "Model hash",
      "Model",
      "Denoising strength",
      "Clip skip",
      "RNG",
      "Hires upscaler",
      "Version",
    ]);
  });

  it("quotes values with commas, colons, newlines or quotes as JSON strings", () => {
    const text = buildInfotext({
      ...basic,
      model: "my model, v2: final",
      extra: { "Lora hashes": "a: 1, b: 2", Note: 'say "hi"', Plain: "no quoting" },
    });
    const last = text.split("\n").at(-1)!;
    expect(last).toContain('Model: "my model, v2: final"');
    expect(last).toContain('Lora hashes: "a: 1, b: 2"');
    expect(last).toContain('Note: "say \\"hi\\""');
    expect(last).toContain("Plain: no quoting");
  });

  it("round-trips through build and parse, including multi-line prompts, quoting and Unicode", () => {
    const info: Infotext = {
      ...basic,
      prompt: "a robot dog 🐕, looking into a mirror\nby a window: morning light",
      negativePrompt: "blurry, (worst quality:1.4)\nwatermark",
      cfgScale: 7.5,
      seed: 4294967295n,
      width: 768,
      height: 512,
      model: 'v1-5, "pruned": emaonly',
      scheduleType: "Karras",
      extra: {
        "TI hashes": "easynegative: c74b4e810b03, x: y",
        Note: "multi\nline",
        "Mask blur": "4",
        Version: "diffuse 0.1.0",
      },
    };
    expect(parseInfotext(buildInfotext(info))).toEqual(info);
  });

  it("writes and reads back every seed exactly, 2^64-1 included (a number would round it), and A1111's negative seeds", () => {
    const text = buildInfotext({ ...basic, seed: 18446744073709551615n });
    expect(text).toMatch(/, Seed: 18446744073709551615, /);
    expect(parseInfotext(text).seed).toBe(18446744073709551615n);
    expect(
      parseInfotext("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 9007199254740993, Size: 64x64").seed,
    ).toBe(9007199254740993n);
    // A1111 writes a seed as it was given, negative ones too (PyTorch wraps them).
    expect(parseInfotext("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: -5, Size: 64x64").seed).toBe(-5n);
    expect(() => parseInfotext("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 4.5, Size: 64x64")).toThrow(
      /infotext Seed "4\.5" is not a whole number/,
    );
  });

  it("parses a hand-written A1111 example with a multi-line prompt, a negative prompt and quoted values", () => {
    const info = parseInfotext(A1111_EXAMPLE);
    expect(info.prompt).toBe(
      "masterpiece, best quality, (a lighthouse at dusk:1.2),\ndramatic clouds, <lora:add_detail:0.6>\noil painting",
    );
    expect(info.negativePrompt).toBe("lowres, bad anatomy,\nworst quality");
    expect(info).toMatchObject({
      steps: 28,
      sampler: "DPM++ 2M",
      scheduleType: "Karras",
      cfgScale: 6.5,
      seed: 3141592653n,
      width: 512,
      height: 768,
      modelHash: "6ce0161689",
      model: "v1-5-pruned-emaonly",
      denoisingStrength: 0.45,
      clipSkip: 2,
      rng: "CPU",
    });
    expect(info.extra).toEqual({
      "VAE hash": "735e4c3a44",
      VAE: "vae-ft-mse-840000-ema-pruned.safetensors",
      "Hires upscale": "2",
      "Hires upscaler": "Latent",
      "Lora hashes": "add_detail: 7c6bad76eb54",
      "TI hashes": "easynegative: c74b4e810b03, badhandv4: 5e40d722fc3d",
      Note: 'say "hi", please',
      Version: "v1.10.1",
    });
  });

  it("treats a last line with fewer than 3 parameters as part of the prompt, as A1111 does", () => {
    const parts = splitInfotext("a portrait\nstyle: anime, mood: calm");
    expect(parts).toEqual({ prompt: "a portrait\nstyle: anime, mood: calm", negativePrompt: "", params: {} });
  });

  it("accepts CRLF line endings and surrounding whitespace", () => {
    const info = parseInfotext(
      "  a cat \r\nNegative prompt: dog\r\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64\r\n",
    );
    expect(info).toMatchObject({
      prompt: "a cat",
      negativePrompt: "dog",
      steps: 20,
      sampler: "Euler a",
      seed: 1n,
      width: 64,
      height: 64,
    });
  });

  it("keeps an empty prompt when only a negative prompt was given", () => {
    const text = buildInfotext({ ...basic, prompt: "", negativePrompt: "ugly" });
    expect(text.startsWith("Negative prompt: ugly\n")).toBe(true);
    expect(parseInfotext(text)).toMatchObject({ prompt: "", negativePrompt: "ugly" });
  });

  it("rejects text without the required parameters with InputError naming them", () => {
    expect(() => parseInfotext("just a prompt")).toThrow(InputError);
    expect(() => parseInfotext("p\nSteps: 20, Sampler: Euler a, CFG scale: 7")).toThrow(/Seed, Size/);
    expect(() => parseInfotext("p\nSteps: many, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512")).toThrow(
      /Steps "many"/,
    );
    expect(() => parseInfotext("p\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: big")).toThrow(
      /WIDTHxHEIGHT/,
    );
  });

  it("refuses extra keys that duplicate typed fields or could not be parsed back", () => {
    expect(() => buildInfotext({ ...basic, extra: { Steps: "30" } })).toThrow(InputError);
    expect(() => buildInfotext({ ...basic, extra: { "bad, key": "x" } })).toThrow(InputError);
    expect(() => buildInfotext({ ...basic, extra: { x: "single character keys do not parse" } })).toThrow(InputError);
  });
});

describe("infotext: Schedule type", () => {
  it("writes A1111 1.9's 'Schedule type' right after the sampler and reads it back as a typed field", () => {
    const text = buildInfotext({ ...basic, sampler: "DPM++ 2M", scheduleType: "Karras" });
    expect(text.split("\n").at(-1)).toMatch(/^Steps: 20, Sampler: DPM\+\+ 2M, Schedule type: Karras, CFG scale: 7, /);
    const back = parseInfotext(text);
    expect(back.scheduleType).toBe("Karras");
    expect(back.extra["Schedule type"]).toBeUndefined();
    expect(buildInfotext(back)).toBe(text);
  });

  it("reads an A1111 image's schedule type", () => {
    const a1111 =
      "a fox\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, Schedule type: SGM Uniform, CFG scale: 6, Seed: 7, Size: 832x1216, Model hash: 0123456789, Version: v1.10.1";
    expect(parseInfotext(a1111).scheduleType).toBe("SGM Uniform");
    expect(parseInfotext(a1111.replace("Schedule type: SGM Uniform, ", "")).scheduleType).toBeUndefined();
  });
});
