import { describe, expect, it } from "vitest";
import type { RgbImage } from "../../src/image/codec.js";
import { imagesToTensor, imageToTensor, signedToByte, tensorToImages } from "../../src/image/tensor.js";

const allBytes: RgbImage = {
  width: 256,
  height: 1,
  data: Uint8Array.from({ length: 768 }, (_, i) => Math.floor(i / 3)),
};

describe("image tensors", () => {
  it("maps byte 0 to exactly -1 and 255 to exactly 1", () => {
    const { data, shape } = imageToTensor(allBytes);
    expect(shape).toEqual([1, 3, 1, 256]);
    expect(data[0]).toBe(-1);
    expect(data[255]).toBe(1);
    expect(data[256 + 255]).toBe(1);
  });

  it("lays pixels out as NCHW planes", () => {
    const img: RgbImage = { width: 2, height: 1, data: Uint8Array.of(0, 255, 0, 255, 0, 255) };
    expect(Array.from(imageToTensor(img).data)).toEqual([-1, 1, 1, -1, -1, 1]);
  });

  it("round-trips every byte value exactly", () => {
    const { data, shape } = imageToTensor(allBytes);
    const [back] = tensorToImages(data, shape);
    expect(Array.from(back!.data)).toEqual(Array.from(allBytes.data));
  });

  it("clamps values outside [-1, 1] and maps NaN to 0", () => {
    expect(signedToByte(-1)).toBe(0);
    expect(signedToByte(1)).toBe(255);
    expect(signedToByte(-7)).toBe(0);
    expect(signedToByte(3)).toBe(255);
    expect(signedToByte(Number.NaN)).toBe(0);
    expect(signedToByte(0)).toBe(128); // 127.5 rounds half to even
  });

  it("rounds exact halves to even like numpy", () => {
    // In float32, (x / 2 + 0.5) * 255 is exactly 64.5 for this x: numpy rounds to 64 where Math.round gives 65.
    const x = Math.fround(-0.4941175878047943);
    expect(Math.fround(Math.fround(Math.fround(x / 2) + 0.5) * 255)).toBe(64.5);
    expect(signedToByte(x)).toBe(64);
  });

  it("batches several images and splits them back in order", () => {
    const a: RgbImage = { width: 2, height: 2, data: new Uint8Array(12).fill(10) };
    const b: RgbImage = { width: 2, height: 2, data: new Uint8Array(12).fill(200) };
    const t = imagesToTensor([a, b]);
    expect(t.shape).toEqual([2, 3, 2, 2]);
    const [a2, b2] = tensorToImages(t.data, t.shape);
    expect(Array.from(a2!.data)).toEqual(Array.from(a.data));
    expect(Array.from(b2!.data)).toEqual(Array.from(b.data));
  });

  it("refuses to batch images of different sizes", () => {
    const a: RgbImage = { width: 2, height: 2, data: new Uint8Array(12) };
    const b: RgbImage = { width: 1, height: 2, data: new Uint8Array(6) };
    expect(() => imagesToTensor([a, b])).toThrow(/resize/);
  });
});
