import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { MAX_SEED, parseSeed, RANDOM_SEED, randomSeed, seedInteger, seedToJson } from "../../src/random/seed.js";

describe("parseSeed", () => {
  it("takes every seed from 0 to 2^64-1 exactly, as a safe-integer number, a bigint or a decimal string", () => {
    expect(parseSeed(0)).toBe(0n);
    expect(parseSeed(42)).toBe(42n);
    expect(parseSeed(Number.MAX_SAFE_INTEGER)).toBe(9007199254740991n);
    expect(parseSeed(4294967301n)).toBe(4294967301n);
    expect(parseSeed("18446744073709551615")).toBe(18446744073709551615n);
    expect(parseSeed(" 9007199254740993 ")).toBe(9007199254740993n);
    expect(MAX_SEED).toBe(18446744073709551615n);
  });

  it("reads -1, in any of the three forms, as the request for a random seed", () => {
    expect(parseSeed(-1)).toBe(RANDOM_SEED);
    expect(parseSeed("-1")).toBe(RANDOM_SEED);
    expect(parseSeed(-1n)).toBe(RANDOM_SEED);
  });

  it("refuses a number beyond 2^53-1, whose digits are already lost, and says to pass a string", () => {
    // JSON.parse("18446744073709551615") is 18446744073709551616: accepting it would run another seed.
    expect(() => parseSeed(2 ** 64)).toThrow(InputError);
    expect(() => parseSeed(JSON.parse("18446744073709551615"))).toThrow(
      /not exact.*pass the seed as a decimal string \(e\.g\. "18446744073709551615"\)/,
    );
    expect(() => parseSeed(2 ** 53)).toThrow(/9007199254740992 is not exact/);
  });

  it("refuses seeds outside [-1, 2^64-1] and non-integers, naming the range", () => {
    expect(() => parseSeed(2n ** 64n)).toThrow(
      /seed 18446744073709551616 is out of range: use an integer from 0 to 18446744073709551615, or -1/,
    );
    expect(() => parseSeed(-2)).toThrow(/seed -2 is out of range.*manual_seed\(-2\) is seed 18446744073709551614/);
    expect(() => parseSeed(1.5)).toThrow(/seed 1\.5 is not an integer/);
    expect(() => parseSeed("12abc")).toThrow(/seed "12abc" is not an integer/);
    expect(() => parseSeed("1e5")).toThrow(InputError);
    expect(() => parseSeed("")).toThrow(InputError);
    expect(() => parseSeed(null)).toThrow(/seed null is not an integer/);
    expect(() => parseSeed(true, "--seed")).toThrow(/--seed true is not an integer/);
  });
});

describe("seedInteger", () => {
  it("keeps any exact integer, whatever its range (the generator applies PyTorch's own range)", () => {
    expect(seedInteger("-9223372036854775808")).toBe(-(2n ** 63n));
    expect(seedInteger(2n ** 70n)).toBe(2n ** 70n);
  });
});

describe("randomSeed", () => {
  it("draws below 4294967294, as AUTOMATIC1111's random.randrange(4294967294) does", () => {
    const seeds = Array.from({ length: 200 }, () => randomSeed());
    for (const s of seeds) {
      expect(typeof s).toBe("bigint");
      expect(s >= 0n && s < 4294967294n).toBe(true);
    }
    expect(new Set(seeds).size).toBeGreaterThan(190);
  });
});

describe("seedToJson", () => {
  it("writes a number while it is exact and the decimal string beyond 2^53-1", () => {
    expect(seedToJson(42n)).toBe(42);
    expect(seedToJson(9007199254740991n)).toBe(9007199254740991);
    expect(seedToJson(9007199254740992n)).toBe("9007199254740992");
    expect(seedToJson(MAX_SEED)).toBe("18446744073709551615");
    // What a JSON reader gets back is the seed itself.
    expect(parseSeed(JSON.parse(JSON.stringify({ seed: seedToJson(MAX_SEED) })).seed)).toBe(MAX_SEED);
  });
});
