import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { PipelineCache, PROMPT } from "../helpers/pipeline-parity.js";

const pipes = new PipelineCache({
  cacheDir: mkdtempSync(join(tmpdir(), "diffuse-unguided-")),
  threads: 1,
  safetyChecker: false,
});
afterAll(() => pipes.closeAll());

/** A negative prompt of two 75-token chunks: encoded, it would pad a one-chunk prompt to two. */
const LONG_NEGATIVE = Array.from({ length: 100 }, (_, i) => `blur${i % 9}`).join(" ");

describe.skipIf(!HAVE_REFERENCE)("guidance off (cfg 1 or less) encodes the prompt alone, as diffusers does", () => {
  for (const model of ["sd15-tiny", "sdxl-tiny"]) {
    it(`${model}: a long negative prompt changes nothing at cfg 1 (it would pad the prompt to its length), and does at cfg 5`, async () => {
      const p = await pipes.load({ name: model, path: ref("models", model), opts: {} });
      const run = async (negative: string, cfg: number) =>
        Buffer.from(
          (
            await p.generate({
              prompt: PROMPT,
              negativePrompt: negative,
              steps: 2,
              cfgScale: cfg,
              seed: 4,
              sampler: "euler",
              width: 64,
              height: 64,
            })
          ).images[0]!.image.data,
        );
      expect((await run(LONG_NEGATIVE, 1)).equals(await run("", 1))).toBe(true);
      expect((await run(LONG_NEGATIVE, 5)).equals(await run("", 5))).toBe(false);
    });
  }
});
