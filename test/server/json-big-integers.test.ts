import { describe, expect, it } from "vitest";
import { bigIntegerFields, SEED_FIELDS } from "../../src/server/json-big-integers.js";

const scan = (text: string) => Object.fromEntries(bigIntegerFields(text, SEED_FIELDS));

describe("bigIntegerFields", () => {
  it("finds top-level seed fields whose integer literal is beyond 2^53-1, exactly", () => {
    expect(scan('{"prompt": "x", "seed": 18446744073709551615, "subseed":9007199254740993}')).toEqual({
      seed: 18446744073709551615n,
      subseed: 9007199254740993n,
    });
    expect(scan('{"seed":-9223372036854775808}')).toEqual({ seed: -9223372036854775808n });
  });

  it("leaves alone what JSON.parse reads exactly or that is no integer literal: small integers, fractions, exponents, strings, null", () => {
    expect(scan('{"seed": 9007199254740991}')).toEqual({});
    expect(scan('{"seed": 18446744073709551615.0}')).toEqual({});
    expect(scan('{"seed": 1e30, "subseed": 18446744073709551615E0}')).toEqual({});
    expect(scan('{"seed": "18446744073709551615", "subseed": null}')).toEqual({});
  });

  it("looks only at the top level and at keys, never inside strings or nested values", () => {
    expect(scan('{"override_settings": {"seed": 18446744073709551615}, "a": [18446744073709551615]}')).toEqual({});
    expect(scan('{"prompt": "\\"seed\\": 18446744073709551615", "x": 1}')).toEqual({});
    expect(scan('{"seed": {"seed": 18446744073709551615}}')).toEqual({});
    expect(scan('[{"seed": 18446744073709551615}]')).toEqual({});
  });

  it("follows JSON.parse on repeated keys: the last one counts", () => {
    expect(scan('{"seed": 18446744073709551615, "seed": 5}')).toEqual({});
    expect(scan('{"seed": 5, "seed": 18446744073709551615}')).toEqual({ seed: 18446744073709551615n });
    expect(scan('{"seed": 18446744073709551615, "seed": "7"}')).toEqual({});
  });

  it("survives text that is not JSON (the parser reports it)", () => {
    expect(scan('{"seed": 18446744073709551615, "prompt": "unterminated')).toEqual({ seed: 18446744073709551615n });
    expect(scan('{"seed": -')).toEqual({});
    expect(scan("")).toEqual({});
  });
});
