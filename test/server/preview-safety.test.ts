import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage, type RgbImage } from "../../src/image/codec.js";
import { latentPreview } from "../../src/image/preview.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { strongBlur, type SafetyPolicy } from "../../src/responsible/safety-checker.js";
import type { JobCreated } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { getJson, postJson, readSse, startServer, tempDir, TINY_MODEL, type TestServer } from "./harness.js";

const JOB = { prompt: "a photo of a cat", steps: 60, seed: 7, width: 64, height: 64 };

interface StepData {
  step: number;
  steps: number;
  preview?: string;
  preview_withheld?: string;
}

interface Progress {
  state: { sampling_step: number; job: string };
  current_image: string | null;
}

const same = (a: RgbImage, b: RgbImage): boolean =>
  a.width === b.width && a.height === b.height && Buffer.from(a.data).equals(Buffer.from(b.data));

describe.skipIf(!HAVE_REFERENCE)("live previews of a server with a safety checker that flags every image", () => {
  const cache = tempDir("diffuse-cache-");
  const checkerDir = tempDir("diffuse-checker-");
  /** What each step of JOB previews without any safeguard, from the same model in this process. */
  let unchecked: RgbImage[];

  beforeAll(async () => {
    const pipe = await loadPipeline(TINY_MODEL, { cacheDir: cache.path, threads: 1, safetyChecker: false });
    unchecked = [];
    try {
      await pipe.generate({
        ...JOB,
        onStep: (e) => unchecked.push(latentPreview(e.latents, [1, 4, 8, 8], { scale: 8 })),
      });
    } finally {
      await pipe.close();
    }
    flagsEverything(checkerDir.path);
  });
  afterAll(() => {
    cache.remove();
    checkerDir.remove();
  });

  /** A server under `policy`; runs JOB watched over SSE while /sdapi/v1/progress is polled; returns what both showed. */
  async function watchJob(policy: SafetyPolicy): Promise<{ steps: StepData[]; progress: Progress[]; done: boolean }> {
    let s: TestServer | undefined;
    try {
      s = await startServer({
        cacheDir: cache.path,
        previewIntervalMs: 0,
        loadOptions: {
          threads: 1,
          cacheDir: cache.path,
          safetyChecker: `${checkerDir.path}/safety_checker`,
          safetyPolicy: policy,
          previewCheckShare: Infinity,
        },
      });
      const base = s.base;
      const { body } = await postJson<JobCreated>(`${base}/api/v1/jobs`, JOB);
      const events = readSse(await fetch(`${base}${body.events_url}`));
      let finished = false;
      void events.finally(() => (finished = true));
      const progress: Progress[] = [];
      while (!finished) {
        const p = await getJson<Progress>(`${base}/sdapi/v1/progress`);
        if (p.state.job === `task(${body.id})` && p.state.sampling_step > 0) progress.push(p);
        await new Promise((r) => setTimeout(r, 5));
      }
      const all = await events;
      return {
        steps: all.filter((e) => e.event === "step").map((e) => e.data as StepData),
        progress,
        done: all.at(-1)?.event === "done",
      };
    } finally {
      await s?.close();
    }
  }

  it("block policy: SSE steps carry no preview, only that the checker withheld it; /sdapi/v1/progress gives no current_image", async () => {
    const { steps, progress, done } = await watchJob("block");
    expect(done).toBe(true);
    expect(steps.length).toBeGreaterThan(0);
    for (const s of steps) expect(s.preview).toBeUndefined();
    // The last step always asks for a preview.
    expect(steps.at(-1)).toMatchObject({ step: 60, steps: 60, preview_withheld: "safety" });
    expect(progress.length).toBeGreaterThan(0);
    for (const p of progress) expect(p.current_image).toBeNull();
  });

  it("blur policy: every preview on SSE is the policy's blur of that step's preview; /sdapi/v1/progress shows the blur of that step's or an earlier one; never an unchecked one", async () => {
    const { steps, progress, done } = await watchJob("blur");
    expect(done).toBe(true);
    const shown = steps.filter((s) => s.preview !== undefined);
    expect(shown.at(-1)?.step).toBe(60);
    expect(progress.length).toBeGreaterThan(0);
    for (const s of shown) {
      const image = await decodeImage(Buffer.from(s.preview!.replace(/^data:image\/png;base64,/, ""), "base64"));
      const raw = unchecked[s.step - 1]!;
      expect(same(image, raw)).toBe(false);
      expect(same(image, await strongBlur(raw))).toBe(true);
    }
    // A poll is answered with the newest preview the worker has made, without waiting for the current step's: it
    // shows that step or an earlier one, blurred, and never an unchecked preview of any step.
    const blurred = await Promise.all(unchecked.map((raw) => strongBlur(raw)));
    const polled = progress.filter((p) => p.current_image !== null);
    expect(polled.length).toBeGreaterThan(0);
    for (const p of polled) {
      const image = await decodeImage(Buffer.from(p.current_image!, "base64"));
      expect(unchecked.some((raw) => same(image, raw))).toBe(false);
      const steps = blurred.flatMap((b, k) => (same(image, b) ? [k + 1] : []));
      expect(steps.length).toBeGreaterThan(0);
      expect(Math.min(...steps)).toBeLessThanOrEqual(p.state.sampling_step);
    }
  });
});
