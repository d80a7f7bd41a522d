import { describe, expect, it } from "vitest";
import { stringifyExact } from "../src/json-exact.js";

describe("stringifyExact", () => {
  it("writes bigints as exact JSON integers, anywhere in the value, and everything else as JSON.stringify does", () => {
    const value = {
      seed: 18446744073709551615n,
      all: [1n, -9007199254740993n],
      note: "bigint-x:5",
      n: 1.5,
      nested: { s: null },
    };
    const text = stringifyExact(value);
    expect(text).toBe(
      '{"seed":18446744073709551615,"all":[1,-9007199254740993],"note":"bigint-x:5","n":1.5,"nested":{"s":null}}',
    );
    expect(stringifyExact({ a: "plain" })).toBe(JSON.stringify({ a: "plain" }));
    expect(stringifyExact(5n)).toBe("5");
    expect(stringifyExact(null)).toBe("null");
  });

  it("indents as JSON.stringify does", () => {
    expect(stringifyExact({ seed: 18446744073709551615n }, 2)).toBe('{\n  "seed": 18446744073709551615\n}');
  });
});
