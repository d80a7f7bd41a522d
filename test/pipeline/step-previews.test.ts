import { describe, expect, it } from "vitest";
import type { Safeguards } from "../../src/pipeline/safeguards.js";
import { StepPreviews } from "../../src/pipeline/step-previews.js";

/**
 * The share of a generation's time that preview checks may take. A stand-in for the safeguards whose check takes
 * 100 ms of a fake clock, with steps 1 s apart: the real checker is tested in preview-safety.test.ts.
 */
function setup(share: number) {
  let clock = 0;
  const checked: number[] = [];
  let current = 0;
  const safeguards = {
    checking: true,
    flags: async () => {
      checked.push(current);
      clock += 100;
      return false;
    },
    onFlagged: async () => ({ action: "blocked" }),
  } as unknown as Safeguards;
  const previews = new StepPreviews(safeguards, { share, now: () => clock });
  const latents = new Float32Array(4 * 8 * 8);
  /** Step `step` of 6 arrives at `step` seconds and its preview is asked for at once. */
  const step = async (step: number) => {
    clock = Math.max(clock, step * 1000);
    current = step;
    const preview = previews.forStep(latents, [1, 4, 8, 8], { batch: 0, step, last: step === 6 });
    if (step === 6) previews.judged(0, false);
    return preview();
  };
  return { step, checked };
}

describe("StepPreviews: preview checks take at most their share of the generation's time", () => {
  it("at 5%, a step whose check would overspend shows the latest checked preview; the first and last are always checked", async () => {
    const { step, checked } = setup(0.05);
    const shown = [];
    for (let s = 1; s <= 6; s++) shown.push(await step(s));
    // 100 ms per check against 5% of elapsed time: steps 1, 2 and 4 fit (spent 0, 100, 200 ms against 50, 100,
    // 200 ms allowed); 3 and 5 reuse the latest; 6, the last, is checked whatever the share.
    expect(checked).toEqual([1, 2, 4, 6]);
    expect(shown.map((p) => p.step)).toEqual([1, 2, 2, 4, 4, 6]);
    expect(shown.every((p) => p.safety === "passed" && p.png !== undefined)).toBe(true);
  });

  it("with an unlimited share every step is checked", async () => {
    const { step, checked } = setup(Infinity);
    for (let s = 1; s <= 6; s++) await step(s);
    expect(checked).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
