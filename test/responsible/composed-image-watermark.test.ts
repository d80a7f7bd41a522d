/**
 * The robust watermark of an image composed from generated ones (an X/Y/Z plot's grid) is read back with its job.
 * A grid of similar cells two across repeats with exactly the mark's tile period (half the image), so the detector's
 * fold adds the picture up as coherently as the mark; with cells as busy as the tiny model's, a mark at the ordinary
 * strength was often unreadable there (issue 18's grids through the server: img2img at 128 px cells in 1 of 3 runs,
 * most runs at 192 px).
 */
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/image/codec.js";
import { composeGrid } from "../../src/image/grid-image.js";
import { finishComposedImage } from "../../src/responsible/composed-image.js";
import { detectWatermark } from "../../src/responsible/watermark/detect.js";
import { DIFFUSE_GENERATOR_ID, jobIdFromString } from "../../src/responsible/watermark/robust.js";
import { busyPicture } from "../helpers/busy-picture.js";

describe("the robust watermark of a composed image", () => {
  for (const size of [128, 192])
    it(`is read back with its job from a grid of two alike busy ${size} px cells, for every job id tried`, async () => {
      // Steps 2 and 3 of the same seed differ little: the extreme of that is the same cell twice.
      const cell = busyPicture(size, size, 1);
      const { grid } = composeGrid(
        [cell, cell],
        { x: ["Steps: 2", "Steps: 3"], y: [""], z: [""] },
        { title: "X: Steps" },
      );
      const got: unknown[] = [];
      const want: unknown[] = [];
      for (const jobId of ["grid-a", "grid-b", "grid-c", "grid-d"]) {
        const { bytes } = await finishComposedImage(
          grid,
          "a red circle\nSteps: 2, Seed: 5",
          { model: "tiny", sampler: "Euler" },
          "png",
          { provenance: false, jobId },
        );
        const report = detectWatermark(await decodeImage(bytes));
        got.push([jobId, report.verdict, report.robust.payload]);
        want.push([jobId, "robust", { generator: DIFFUSE_GENERATOR_ID, job: jobIdFromString(jobId) }]);
      }
      expect(got).toEqual(want);
    });
});
