import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { RenamedWeights } from "../../src/weights/ldm-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { transpose2d } from "../../src/weights/transpose.js";
import { f32Bytes, removeTempDirs, tempDir, u16Bytes, writeSafetensors } from "./safetensors-writer.js";

/**
 * Building a graph reads each weight into buffers reused from weight to weight (fresh memory per tensor cost page
 * faults that were most of building the SD1.5 UNet): a tensor read into a given buffer is the one read fresh.
 */
describe("reading tensors into a caller's buffer", () => {
  const dir = tempDir("read-into");
  afterAll(removeTempDirs);
  const halves = Array.from({ length: 65536 }, (_, i) => i);
  const floats = Array.from({ length: 6 * 70 }, (_, i) => Math.sin(i) * 100);
  const path = writeSafetensors(join(dir, "mixed.safetensors"), [
    { name: "f16", dtype: "F16", shape: [256, 256], data: u16Bytes(halves) },
    { name: "bf16", dtype: "BF16", shape: [65536], data: u16Bytes(halves) },
    { name: "f32", dtype: "F32", shape: [6, 70], data: f32Bytes(floats) },
  ]);

  it("fills the buffer with the values a fresh read returns, bit for bit, for F16, BF16 and F32", () => {
    const f = SafetensorsFile.open(path);
    for (const name of ["f16", "bf16", "f32"]) {
      const fresh = f.float32(name);
      // Filled with garbage first: every value must be written.
      const into = new Float32Array(fresh.length).fill(12345);
      expect(f.float32(name, into)).toBe(into);
      expect(new Uint32Array(into.buffer)).toEqual(new Uint32Array(fresh.buffer));
    }
    f.close();
  });

  it("fills a view into a larger buffer, and refuses a buffer of another size", () => {
    const f = SafetensorsFile.open(path);
    const big = new Float32Array(70000).fill(7);
    const into = big.subarray(100, 100 + 6 * 70);
    f.float32("f32", into);
    expect([...into]).toEqual([...f.float32("f32")]);
    expect(big[99]).toBe(7);
    expect(big[100 + 6 * 70]).toBe(7);
    expect(() => f.float32("f16", new Float32Array(10))).toThrow(/65536 values, not the 10/);
    f.close();
  });

  it("renamed tensors: as stored, transposed and split into rows, into the buffer as they are read fresh", () => {
    const f = SafetensorsFile.open(path);
    const w = new RenamedWeights(
      path,
      new Map([
        ["plain", { file: f, stored: "f32", shape: [6, 70] }],
        ["t", { file: f, stored: "f32", shape: [70, 6], view: { kind: "transpose" } }],
        ["k", { file: f, stored: "f32", shape: [2, 70], view: { kind: "rows", part: 1, of: 3 } }],
      ]),
    );
    for (const name of ["plain", "t", "k"]) {
      const fresh = w.float32(name);
      const into = new Float32Array(fresh.length).fill(-1);
      expect(w.float32(name, into)).toBe(into);
      expect([...into]).toEqual([...fresh]);
    }
    f.close();
  });

  it("transposes tile by tile to the element-by-element result, for sizes that are not multiples of a tile", () => {
    for (const [rows, cols] of [
      [1, 1],
      [3, 77],
      [33, 65],
      [64, 32],
    ] as const) {
      const data = Float32Array.from({ length: rows * cols }, (_, i) => i);
      const want = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c * rows + r] = data[r * cols + c]!;
      expect(transpose2d(data, rows, cols)).toEqual(want);
      const out = new Float32Array(rows * cols);
      expect(transpose2d(data, rows, cols, out)).toBe(out);
      expect(out).toEqual(want);
    }
  });
});
