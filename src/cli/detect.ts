import type { Command } from "commander";
import { decodeImage, detectWatermark } from "../index.js";
import { FoundButBrokenError, NothingFoundError } from "./finding-errors.js";

/** `diffuse detect IMAGE`: looks for our robust watermark and the original SD dwtDct marks. */
export function registerDetect(program: Command): void {
  program
    .command("detect")
    .description(
      "look for invisible watermarks (diffuse's robust mark, Stable Diffusion's dwtDct marks): exit 0 found, 2 none, 3 unreadable (as verify)",
    )
    .argument("<image>", "an image file (PNG, JPEG, WebP, ...)")
    .option("--json", "print the report as JSON")
    .action(async (path: string, o: { json?: boolean }) => {
      const report = detectWatermark(await decodeImage(path));
      if (o.json) {
        const { verdict, confidence, summary, robust, dwtDct } = report;
        process.stdout.write(
          JSON.stringify({
            verdict,
            confidence,
            summary,
            robust: {
              found: robust.found,
              present: robust.present,
              payload: robust.payload,
              syncScore: robust.syncScore,
              falsePositiveProbability: robust.falsePositiveProbability,
            },
            dwtDct,
          }) + "\n",
        );
      } else {
        process.stdout.write(`${report.summary}\n`);
      }
      if (report.verdict === "none")
        throw new NothingFoundError(
          `${path}: no invisible watermark found (diffuse marks images of 128x128 and larger unless --no-watermark; edits such as heavy cropping or resizing can erase a mark)`,
        );
      if (report.verdict === "robust-unreadable")
        throw new FoundButBrokenError(`${path}: diffuse's robust watermark is present but its payload cannot be read`);
    });
}
