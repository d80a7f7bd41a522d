import { describe, expect, it } from "vitest";
import { jsonDepth, jsonTooDeep } from "../src/json-depth.js";

describe("jsonDepth", () => {
  it("counts arrays and objects as one level each", () => {
    expect(jsonDepth("1")).toBe(0);
    expect(jsonDepth('{"a":[1,{"b":[]}]}')).toBe(4);
    expect(jsonDepth("[[],[[]],[]]")).toBe(3);
  });

  it("ignores brackets inside strings, escaped quotes included", () => {
    expect(jsonDepth('{"a":"[[[{{{"}')).toBe(1);
    expect(jsonDepth('["\\"[[[", ["x"]]')).toBe(2);
    expect(jsonDepth('["\\\\", [[]]]')).toBe(3);
    // Runs of backslashes before a quote: an odd run escapes it, an even run is escaped backslashes.
    expect(jsonDepth('["a\\\\\\\\", [[]]]')).toBe(3);
    expect(jsonDepth('["a\\\\\\"[[[", [[]]]')).toBe(3);
    expect(jsonDepth('["\\\\\\"", [[]]]')).toBe(3);
    // An unterminated string runs to the end: nothing after its quote counts.
    expect(jsonDepth('[["[[[[')).toBe(2);
  });

  it("skips long strings such as base64 uploads whole, as text and as bytes", () => {
    const upload = JSON.stringify({ prompt: "x", init_images: ["A".repeat(1_000_000) + "[{", "\\".repeat(1000)] });
    expect(jsonDepth(upload)).toBe(2);
    expect(jsonDepth(new TextEncoder().encode(upload))).toBe(2);
  });

  it("reads UTF-8 bytes the same way as text", () => {
    const text = '{"é":["[", {"ü": [1]}]}';
    expect(jsonDepth(new TextEncoder().encode(text))).toBe(jsonDepth(text));
    expect(jsonDepth(text)).toBe(4);
  });

  it("stops at the limit: 5,000 levels are refused after limit + 1 characters", () => {
    const deep = "[".repeat(5000) + "]".repeat(5000);
    expect(jsonDepth(deep, 64)).toBe(65);
    expect(jsonTooDeep(deep, 64)).toBe(true);
    expect(jsonTooDeep("[".repeat(64) + "]".repeat(64), 64)).toBe(false);
    expect(jsonTooDeep("[".repeat(65) + "]".repeat(65), 64)).toBe(true);
  });
});
