/**
 * Corruption of a compile-cache entry's main files (model.onnx, weights.bin, manifest.json), table-driven: each
 * damage is detected by lookup (with its reason), getOrBuild rebuilds the entry, and the rebuilt entry computes
 * what the intact one did. Run for an entry whose weights are read whole and for one above 4 MiB, whose weights
 * are checked by a sampled digest (file-digest.ts: it catches damage to a whole file or a large part of it).
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/onnx/builder.js";
import { DataType } from "../../src/onnx/graph.js";
import { CompileCache } from "../../src/runtime/compile-cache.js";
import { Session } from "../../src/runtime/session.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** y = x W, W of n x n, stored as external data. */
function matmul(n: number): { build: () => GraphBuilder; expected: (x: Float32Array) => number[] } {
  const w = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i * 0.37));
  return {
    build: () => {
      const g = new GraphBuilder("matmul");
      const x = g.input("x", DataType.FLOAT, [1, n], [1, n]);
      g.output(
        g.matmul(
          x,
          g.initializer("w", [n, n], () => w),
        ),
        "y",
        [1, n],
      );
      return g;
    },
    expected: (x) =>
      [0, 1, n - 1].map((j) => {
        let e = 0;
        for (let i = 0; i < n; i++) e += x[i]! * w[i * n + j]!;
        return e;
      }),
  };
}

async function outputs(path: string, n: number): Promise<number[]> {
  const s = await Session.create(path, { threads: 1 });
  try {
    const x = Float32Array.from({ length: n }, (_, i) => ((i % 7) - 3) / 7);
    const y = (await s.run({ x: { data: x, dims: [1, n] } })).y!.data;
    return [0, 1, n - 1].map((j) => y[j]!);
  } finally {
    await s.release();
  }
}

type Damage = [name: string, file: "model.onnx" | "weights.bin" | "manifest.json", apply: (path: string) => void];

const flipAt = (at: (size: number) => number) => (path: string) => {
  const b = readFileSync(path);
  b[at(b.length)]! ^= 0x40;
  writeFileSync(path, b);
};

const DAMAGES: Damage[] = [
  ["a flipped byte near the start", "weights.bin", flipAt(() => 100)],
  ["a flipped byte at the end", "weights.bin", flipAt((n) => n - 1)],
  ["random bytes of the same size", "weights.bin", (p) => writeFileSync(p, randomBytes(statSync(p).size))],
  [
    "zeros from the middle on",
    "weights.bin",
    (p) => {
      const b = readFileSync(p);
      b.fill(0, b.length >> 1);
      writeFileSync(p, b);
    },
  ],
  ["cut short", "weights.bin", (p) => truncateSync(p, statSync(p).size >> 1)],
  ["grown", "weights.bin", (p) => appendFileSync(p, Buffer.alloc(16))],
  ["deleted", "weights.bin", (p) => rmSync(p)],
  ["empty", "weights.bin", (p) => truncateSync(p, 0)],
  ["a flipped byte", "model.onnx", flipAt((n) => n >> 1)],
  ["random bytes of the same size", "model.onnx", (p) => writeFileSync(p, randomBytes(statSync(p).size))],
  ["cut short", "model.onnx", (p) => truncateSync(p, statSync(p).size - 1)],
  ["deleted", "model.onnx", (p) => rmSync(p)],
  ["not JSON", "manifest.json", (p) => writeFileSync(p, "{ half a manif")],
  ["empty", "manifest.json", (p) => truncateSync(p, 0)],
  [
    "another entry's key",
    "manifest.json",
    (p) => writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, "utf8")), key: "other" })),
  ],
  [
    "another format version",
    "manifest.json",
    (p) => writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, "utf8")), version: 99 })),
  ],
  [
    "digests of other files",
    "manifest.json",
    (p) => {
      const m = JSON.parse(readFileSync(p, "utf8"));
      writeFileSync(p, JSON.stringify({ ...m, modelSha256: "0".repeat(64), weightsSample: "0".repeat(64) }));
    },
  ],
];

for (const [label, n] of [
  ["weights read whole (16 KiB)", 64],
  ["weights above 4 MiB (sampled digest)", 1040],
] as const) {
  describe(`compile cache entry with ${label}`, () => {
    const net = matmul(n);
    const x = Float32Array.from({ length: n }, (_, i) => ((i % 7) - 3) / 7);
    const want = net.expected(x);

    for (const [damage, file, apply] of DAMAGES) {
      it(`${file} ${damage}: detected, rebuilt, and the rebuilt entry computes the intact result`, async () => {
        const dir = mkdtempSync(join(tmpdir(), "diffuse-cache-damage-"));
        dirs.push(dir);
        const cache = new CompileCache(dir);
        const built = cache.getOrBuild("k", net.build);
        expect(cache.lookup("k").hit).toBe(true);
        if (file === "weights.bin" && n > 64)
          expect(statSync(join(dir, "k", file)).size).toBeGreaterThan(4 * 1024 * 1024);

        apply(join(dir, "k", file));
        const found = cache.lookup("k");
        expect(found.hit).toBe(false);
        expect(found.hit ? "" : found.reason).toMatch(/corrupted|differ|missing|unreadable|another version/);

        const events: boolean[] = [];
        const rebuilt = cache.getOrBuild("k", net.build, (e) => events.push(e.hit));
        expect(events).toEqual([false]);
        expect(rebuilt.id).not.toBe(built.id);
        expect(cache.lookup("k").hit).toBe(true);
        const got = await outputs(rebuilt.path, n);
        for (let j = 0; j < want.length; j++) expect(got[j]).toBeCloseTo(want[j]!, 3);
      });
    }
  });
}
