import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { VAE_IO } from "../../src/models/vae.js";
import { Networks } from "../../src/pipeline/networks.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

/**
 * The VAE decoder runs once per image on the largest tensors of a generation (SDXL at 1024 px: 512 MB each). With
 * onnxruntime's memory pattern, the second run asks its arena for one block holding every intermediate, which the
 * blocks the first run left do not fit, so the arena grows again: at 1024 px from 4.3 GB to 7.5 GB, on top of the
 * weights. Measured on the process's anonymous memory (where the arena lives).
 */

function rssAnonBytes(): number {
  return Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
}

describe.skipIf(!HAVE_REFERENCE || process.platform !== "linux")("VAE decoder memory", () => {
  it("a second decode at the same size takes no more memory than the first", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-vae-memory-"));
    const nets = await Networks.open(openCheckpoint(ref("models/sdxl-tiny")), { cacheDir, threads: 1 });
    try {
      const vae = await nets.get("vae_decoder");
      const size = 64; // 512 px: tensors of 16 MiB in the tiny VAE's widest level
      const latent = {
        data: Float32Array.from({ length: 4 * size * size }, (_, i) => Math.sin(i)),
        dims: [1, 4, size, size],
      };
      const before = rssAnonBytes();
      await vae.run({ [VAE_IO.latent]: latent });
      const first = rssAnonBytes() - before;
      await vae.run({ [VAE_IO.latent]: latent });
      const second = rssAnonBytes() - before - first;
      expect(first).toBeGreaterThan(32 * 2 ** 20); // the decode's own working memory, for scale
      expect(
        second,
        `the first decode took ${(first / 2 ** 20).toFixed(0)} MiB, the second ${(second / 2 ** 20).toFixed(0)} MiB more`,
      ).toBeLessThan(first / 8);
    } finally {
      await nets.release();
      nets.checkpoint.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});
