/**
 * A worker thread cannot take functions: pixel upscalers given as functions are refused by name when the pipeline
 * is to run in one, pointing at upscalerSearch (plain folders, which the thread searches itself).
 */
import { describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { InputError } from "../../src/errors.js";
import { loadPipeline } from "../../src/worker/load.js";

describe("loadPipeline({ worker: true }) with upscalers given as functions", () => {
  it("is refused with an InputError naming them and upscalerSearch", async () => {
    const doubler = async (rgb: Uint8Array) => rgb;
    const loading = loadPipeline(defaultModelPath(), { worker: true, upscalers: { Doubler: doubler } });
    await expect(loading).rejects.toThrow(InputError);
    await expect(loading).rejects.toThrow(/"Doubler".*worker thread.*upscalerSearch/);
  });
});
