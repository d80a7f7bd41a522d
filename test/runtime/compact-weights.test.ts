import { describe, expect, it } from "vitest";
import { compactTensor, expandInto } from "../../src/runtime/compact-weights.js";

function roundTrip(values: Float32Array): { format: string; back: Float32Array } {
  const { format, bytes } = compactTensor(values);
  const back = new Float32Array(values.length);
  expandInto(format, bytes, back);
  return { format, back };
}

const bits = (f: Float32Array) => Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length));

describe("compact weights", () => {
  it("keeps every half value (normal, subnormal, zeros, infinities) in 2 bytes and gives back the same fp32 bits", () => {
    const halves = Uint16Array.from({ length: 0x10000 }, (_, h) => h).filter(
      (h) => (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0,
    ); // no NaNs
    const asFloat = new Float32Array(halves.length);
    expandInto("f16", new Uint8Array(halves.buffer), asFloat);
    expect(asFloat[halves.indexOf(0x3c00)]).toBe(1);
    expect(asFloat[halves.indexOf(0x0001)]).toBe(2 ** -24);
    expect(asFloat[halves.indexOf(0x8400)]).toBe(-(2 ** -14));
    expect(asFloat[halves.indexOf(0xfc00)]).toBe(-Infinity);
    const { format, back } = roundTrip(asFloat);
    expect(format).toBe("f16");
    expect(bits(back)).toEqual(bits(asFloat));
    expect(compactTensor(asFloat).bytes.byteLength).toBe(2 * asFloat.length);
  });

  it("keeps bf16 values outside the half range in 2 bytes, exactly", () => {
    const values = Float32Array.from([1e30, -3.5e-20, 1, 0, 2 ** 100]);
    for (let i = 0; i < values.length; i++)
      values[i] = new Float32Array(new Uint32Array([new Uint32Array(values.buffer)[i]! & 0xffff0000]).buffer)[0]!;
    const { format, back } = roundTrip(values);
    expect(format).toBe("bf16");
    expect(bits(back)).toEqual(bits(values));
  });

  it("keeps values that are neither halves nor bf16 as fp32", () => {
    for (const v of [Float32Array.from([1, Math.PI]), Float32Array.from([1, 65520]), Float32Array.from([1e-40])]) {
      const { format, back } = roundTrip(v);
      expect(format).toBe("f32");
      expect(bits(back)).toEqual(bits(v));
    }
  });

  it("never stores a NaN as a half (whose payload it may not keep), and gives its bits back", () => {
    const v = new Float32Array(new Uint32Array([0x3f800000, 0x7fc00000, 0x7f800001]).buffer);
    const { format, back } = roundTrip(v);
    expect(format).toBe("f32");
    expect(bits(back)).toEqual(bits(v));
    expect(roundTrip(Float32Array.from([0.5, NaN])).format).toBe("bf16"); // the default NaN's low half is zero
  });
});
