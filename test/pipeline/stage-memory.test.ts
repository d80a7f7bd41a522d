import { describe, expect, it } from "vitest";
import { decodeWorkingBytes, fp32WeightBytes, releasesFinishedNetworks } from "../../src/pipeline/stage-memory.js";
import type { WeightSource } from "../../src/weights/weight-source.js";

const GiB = 2 ** 30;

describe("when a generation releases the networks it is done with", () => {
  // SDXL base's fp32 weights (UNet 2.57 G, text encoders 0.82 G, VAE 84 M parameters) and SD1.5's (1.07 G).
  const sdxl = 12.9 * GiB;
  const sd15 = 4.0 * GiB;
  const machine = 23.4 * GiB; // the benchmark's machine

  it("auto: SDXL at 1024 px on a 24 GB machine is short of memory, SDXL at 512 px and SD1.5 at 512 px are not", () => {
    expect(
      releasesFinishedNetworks("auto", { weightBytes: sdxl, decodeBytes: decodeWorkingBytes(1024, 1024) }, machine),
    ).toBe(true);
    expect(
      releasesFinishedNetworks("auto", { weightBytes: sdxl, decodeBytes: decodeWorkingBytes(512, 512) }, 32 * GiB),
    ).toBe(false);
    expect(
      releasesFinishedNetworks("auto", { weightBytes: sd15, decodeBytes: decodeWorkingBytes(512, 512) }, machine),
    ).toBe(false);
    // SD1.5 on an 8 GB machine
    expect(
      releasesFinishedNetworks("auto", { weightBytes: sd15, decodeBytes: decodeWorkingBytes(512, 512) }, 7.7 * GiB),
    ).toBe(true);
  });

  it("keep and release decide whatever the memory", () => {
    const short = { weightBytes: sdxl, decodeBytes: decodeWorkingBytes(2048, 2048) };
    const plenty = { weightBytes: 1e6, decodeBytes: 1e6 };
    expect(releasesFinishedNetworks("keep", short, machine)).toBe(false);
    expect(releasesFinishedNetworks("release", plenty, machine)).toBe(true);
  });

  it("counts every weight as the fp32 the sessions hold, whatever its precision in the file", () => {
    const shapes = new Map<string, number[]>([
      ["a", [2, 3]],
      ["b", [4]],
    ]);
    const source = {
      origin: "test",
      keys: () => [...shapes.keys()],
      has: (k: string) => shapes.has(k),
      shape: (k: string) => shapes.get(k)!,
      dtype: (k: string) => (k === "a" ? "F16" : "F32"),
      float32: () => {
        throw new Error("weights are counted from their shapes, never read");
      },
    } as WeightSource;
    expect(fp32WeightBytes([source, undefined])).toBe(4 * (6 + 4));
  });
});
