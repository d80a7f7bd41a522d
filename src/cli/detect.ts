import type { Command } from "commander";
import { decodeImage } from "../image/codec.js";
import { detectWatermark } from "../responsible/watermark/detect.js";

/** `diffuse detect IMAGE`: looks for our robust watermark and the original SD dwtDct marks. */
export function registerDetect(program: Command): void {
  program
    .command("detect")
    .description("look for invisible watermarks (diffuse's robust mark, Stable Diffusion's dwtDct marks)")
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
    });
}
