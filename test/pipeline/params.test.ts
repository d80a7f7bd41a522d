import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { resolveParams } from "../../src/pipeline/params.js";

const defaults = { size: 64, randomSeed: () => 1n };

describe("resolveParams", () => {
  it("refuses a NUL in the prompt or negative prompt before any compute: image metadata cannot hold one", () => {
    expect(() => resolveParams({ prompt: "a red\0 circle" }, defaults)).toThrow(InputError);
    expect(() => resolveParams({ prompt: "a red\0 circle" }, defaults)).toThrow(/the prompt contains a NUL character/);
    expect(() => resolveParams({ prompt: "a red circle", negativePrompt: "blurry\0" }, defaults)).toThrow(
      /the negative prompt contains a NUL character/,
    );
    // Other control characters are kept for the tokenizer's clean-up, as the reference does.
    expect(resolveParams({ prompt: "a red\u0007 circle" }, defaults).prompt).toBe("a red\u0007 circle");
  });
});

describe("resolveParams: seeds", () => {
  it("takes any seed from 0 to 2^64-1 exactly, as a bigint, a decimal string or a safe-integer number", () => {
    expect(resolveParams({ prompt: "x", seed: "18446744073709551615" }, defaults).seed).toBe(18446744073709551615n);
    expect(resolveParams({ prompt: "x", seed: 4294967301n }, defaults).seed).toBe(4294967301n);
    expect(resolveParams({ prompt: "x", seed: 4294967301 }, defaults).seed).toBe(4294967301n);
    expect(resolveParams({ prompt: "x", seed: 0 }, defaults).seed).toBe(0n);
  });

  it("draws a random seed for -1 (in any form) or no seed", () => {
    const drawn = { ...defaults, randomSeed: () => 777n };
    for (const seed of [undefined, -1, "-1", -1n]) expect(resolveParams({ prompt: "x", seed }, drawn).seed).toBe(777n);
  });

  it("refuses a number seed beyond 2^53-1 (already rounded) and seeds outside [-1, 2^64-1], naming the fix", () => {
    expect(() => resolveParams({ prompt: "x", seed: 2 ** 64 }, defaults)).toThrow(/not exact.*as a decimal string/);
    expect(() => resolveParams({ prompt: "x", seed: "18446744073709551616" }, defaults)).toThrow(
      /out of range: use an integer from 0 to 18446744073709551615, or -1/,
    );
    expect(() => resolveParams({ prompt: "x", seed: -5 }, defaults)).toThrow(InputError);
    expect(() => resolveParams({ prompt: "x", seed: "twelve" }, defaults)).toThrow(/seed "twelve" is not an integer/);
  });

  it("refuses, before any compute, a batch whose later images would need a seed past 2^64-1 (image j takes seed + j)", () => {
    expect(resolveParams({ prompt: "x", seed: "18446744073709551614", batchSize: 2 }, defaults).seed).toBe(
      18446744073709551614n,
    );
    expect(() => resolveParams({ prompt: "x", seed: "18446744073709551615", batchSize: 2 }, defaults)).toThrow(
      /seed 18446744073709551615 with 2 images needs seeds up to 18446744073709551616.*use a seed up to 18446744073709551614/,
    );
    expect(() =>
      resolveParams({ prompt: "x", seed: "18446744073709551613", batchSize: 2, batchCount: 2 }, defaults),
    ).toThrow(/with 4 images/);
  });
});

describe("resolveParams: schedule types (A1111's scheduler field)", () => {
  it("takes a schedule type by A1111's label or name; absent means the sampler's own (Automatic)", () => {
    expect(resolveParams({ prompt: "x", sampler: "Euler", schedule: "Karras" }, defaults).schedule).toBe("karras");
    expect(resolveParams({ prompt: "x", sampler: "euler-a", schedule: "sgm_uniform" }, defaults).schedule).toBe(
      "sgm_uniform",
    );
    expect(resolveParams({ prompt: "x", sampler: "Euler" }, defaults).schedule).toBe("automatic");
  });

  it("reads A1111's combined names: 'Euler Karras' is Euler with the Karras schedule", () => {
    const p = resolveParams({ prompt: "x", sampler: "Euler Karras" }, defaults);
    expect([p.sampler, p.schedule]).toEqual(["Euler", "karras"]);
    // A combined name we have as a sampler of its own stays as given.
    expect(resolveParams({ prompt: "x", sampler: "DPM++ 2M Karras" }, defaults).sampler).toBe("DPM++ 2M Karras");
  });

  it("refuses, before any compute, an unknown schedule type (listing the valid ones) or one for a sampler with its own grid", () => {
    expect(() => resolveParams({ prompt: "x", sampler: "Euler", schedule: "Karas" }, defaults)).toThrow(InputError);
    expect(() => resolveParams({ prompt: "x", sampler: "Euler", schedule: "Karas" }, defaults)).toThrow(
      /unknown schedule type "Karas": use one of "Automatic", "Uniform", "Karras"/,
    );
    expect(() => resolveParams({ prompt: "x", sampler: "DDIM", schedule: "Karras" }, defaults)).toThrow(
      /takes no schedule type/,
    );
  });
});
