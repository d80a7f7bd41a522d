import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compactEncoder, compactTensor, expandInto } from "../../src/runtime/compact-weights.js";
import { StoredTensors } from "../../src/runtime/stored-tensors.js";

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

  describe("int8 values times per-row or per-column scales (weight-only int8)", () => {
    /**
     * A [rows, cols] tensor of int8 values q (cycling through -127..127) and fp32 scales, and its fp32 values as
     * the products q × scale, written here from that definition. 3 columns and 7-wide rows over 3M values: the
     * reader's rounds (2^21 values) end mid-row and mid-column.
     */
    const tensor = (axis: 0 | 1, rows: number, cols: number) => {
      const q = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 37) % 255) - 127);
      const scales = Float32Array.from({ length: axis === 0 ? rows : cols }, (_, i) => 0.001 * (i + 1) + 1e-7 * i * i);
      const values = Float32Array.from(q, (v, i) => v * scales[axis === 0 ? Math.floor(i / cols) : i % cols]!);
      return { int8: { axis, quantized: () => ({ q, scales }) }, values };
    };

    for (const [axis, rows, cols, format] of [
      [0, (3 * 2 ** 20) / 7, 7, "i8-rows"],
      [1, 2 ** 20, 3, "i8-cols"],
    ] as const) {
      it(`stores ${format} as the scales then the int8 values, and reads back the same fp32 bits`, () => {
        const { int8, values } = tensor(axis, Math.floor(rows), cols);
        const { format: stored, bytes } = compactEncoder()(values, { int8 });
        expect(stored).toBe(format);
        expect(bytes.byteLength).toBe(4 * int8.quantized().scales.length + values.length);
        const dir = mkdtempSync(join(tmpdir(), "diffuse-int8-stored-"));
        try {
          const path = join(dir, "weights.half");
          const pad = 64; // the segment does not start the file
          writeFileSync(path, Buffer.concat([Buffer.alloc(pad), bytes]));
          const seg = { offset: 128, length: 4 * values.length, storedOffset: pad, storedLength: bytes.length, format };
          const back = new Float32Array(values.length);
          const reader = new StoredTensors(path);
          try {
            reader.readInto(seg, 128 + 4 * values.length, back);
            // A segment whose stored size does not fit its tensor is refused, not misread.
            expect(() =>
              reader.readInto({ ...seg, storedLength: bytes.length - 1 }, 128 + 4 * values.length, back),
            ).toThrow(/damaged/);
          } finally {
            reader.close();
          }
          expect(bits(back).every((b, i) => b === new Uint32Array(values.buffer)[i])).toBe(true);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });
});
