/**
 * Cancellation stops a generation at the next step boundary: an abort that arrives while step k is reported
 * (or between steps) means no step after k runs, nor the next image batch, nor decoding. Tested by the steps
 * reported, not by a clock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GenerationAborted, loadPipeline, type StableDiffusionPipeline } from "../../src/index.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("aborting a generation (sd15-tiny)", () => {
  const cache = mkdtempSync(join(tmpdir(), "diffuse-cancel-cache-"));
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir: cache,
      threads: 1,
      safetyChecker: false,
      watermark: false,
      provenance: false,
    });
  });
  afterAll(async () => {
    await pipe?.close();
    rmSync(cache, { recursive: true, force: true });
  });

  async function run(
    abortAt: (step: number, batch: number) => boolean,
    how: "now" | "microtask",
    opts: { steps?: number; batchCount?: number } = {},
  ) {
    const ac = new AbortController();
    const seen: { step: number; batch: number }[] = [];
    let abortedAt: { step: number; batch: number } | undefined;
    const outcome = await pipe
      .generate({
        prompt: "a red square",
        steps: opts.steps ?? 40,
        batchCount: opts.batchCount ?? 1,
        seed: 3,
        signal: ac.signal,
        onStep: (e) => {
          seen.push({ step: e.step, batch: e.batch });
          if (abortedAt === undefined && abortAt(e.step, e.batch)) {
            abortedAt = { step: e.step, batch: e.batch };
            if (how === "now") ac.abort();
            else queueMicrotask(() => ac.abort());
          }
        },
      })
      .then(
        () => "finished",
        (e: unknown) => e,
      );
    return { outcome, seen, abortedAt };
  }

  it("an abort during step 5's report ends the run with GenerationAborted: step 5 is the last", async () => {
    const r = await run((step) => step === 5, "now");
    expect(r.outcome).toBeInstanceOf(GenerationAborted);
    expect(r.seen.map((s) => s.step)).toEqual([1, 2, 3, 4, 5]);
  });

  it("an abort that arrives while step 6 computes (queued just after step 5's report): step 6 finishes and is the last", async () => {
    const r = await run((step) => step === 5, "microtask");
    expect(r.outcome).toBeInstanceOf(GenerationAborted);
    expect(r.seen.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("an abort during the first image batch's last step: the second batch never starts", async () => {
    const r = await run((step, batch) => batch === 0 && step === 6, "now", { steps: 6, batchCount: 2 });
    expect(r.outcome).toBeInstanceOf(GenerationAborted);
    expect(r.seen).toEqual([1, 2, 3, 4, 5, 6].map((step) => ({ step, batch: 0 })));
    // Not aborted, the same request runs both batches.
    const whole = await run(() => false, "now", { steps: 6, batchCount: 2 });
    expect(whole.outcome).toBe("finished");
    expect(whole.seen.filter((s) => s.batch === 1)).toHaveLength(6);
  });

  it("an abort during the last step still cancels: no image comes back", async () => {
    const r = await run((step) => step === 6, "now", { steps: 6 });
    expect(r.outcome).toBeInstanceOf(GenerationAborted);
    expect(r.seen.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("an already aborted signal runs no step", async () => {
    const ac = new AbortController();
    ac.abort();
    const seen: number[] = [];
    const outcome = await pipe
      .generate({ prompt: "x", steps: 10, seed: 1, signal: ac.signal, onStep: (e) => seen.push(e.step) })
      .then(
        () => "finished",
        (e: unknown) => e,
      );
    expect(outcome).toBeInstanceOf(GenerationAborted);
    expect(seen).toEqual([]);
  });
});
