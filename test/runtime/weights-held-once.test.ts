import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";

/**
 * A compact cache entry's fp32 weights are rebuilt in a file that onnxruntime maps (in /dev/shm where it has room),
 * and the file stays in memory for as long as the session maps it. A session that also keeps its own copy of the
 * MatMul weights (onnxruntime's prepacking) holds them twice: SDXL's UNet, 10 GB of weights of which 9 GB feed
 * MatMuls, then needs about 19 GB and did not load on a 24 GB machine. Measured on the process's anonymous memory,
 * which the mapped file does not count in.
 */

const K = 4096,
  N = 8192; // a 128 MiB fp32 weight
const WEIGHT_BYTES = 4 * K * N;

function rssAnonBytes(): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m![1]) * 1024;
}

describe.skipIf(process.platform !== "linux")("sessions on cached graphs", () => {
  it("hold a MatMul weight once: loading adds no copy of it to the process's own memory, and the product is right", async () => {
    // Values exact in fp16, so that the entry stores them compact and they are rebuilt at load.
    const w = Float32Array.from({ length: K * N }, (_, i) => ((i * 7919) % 2048) / 1024 - 1);
    const g = new GraphBuilder("matmul");
    const x = g.input("x", DataType.FLOAT, [1, K], [1, K]);
    g.output(
      g.matmul(
        x,
        g.initializer("w", [K, N], () => w),
      ),
      "y",
      [1, N],
    );
    const dir = mkdtempSync(join(tmpdir(), "diffuse-held-once-"));
    try {
      const cache = new CompileCache(dir);
      const entry = cache.getOrBuild("mm", () => g);
      const before = rssAnonBytes();
      const session = await cache.open(entry, { threads: 1 });
      const grown = rssAnonBytes() - before;
      expect(
        grown,
        `anonymous memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB for a ${WEIGHT_BYTES / 2 ** 20} MiB weight`,
      ).toBeLessThan(WEIGHT_BYTES / 2);
      const row = 5;
      const y = (
        await session.run({
          x: { data: Float32Array.from({ length: K }, (_, i) => (i === row ? 1 : 0)), dims: [1, K] },
        })
      ).y!.data;
      expect(Array.from(y.subarray(0, 4))).toEqual(Array.from(w.subarray(row * N, row * N + 4)));
      expect(y[N - 1]).toBe(w[row * N + N - 1]);
      await session.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
