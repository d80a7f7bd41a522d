import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { JobStore } from "../../src/server/store.js";
import { tempDir } from "./harness.js";

const temps: { remove: () => void }[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) t.remove();
});

const SEEDS = [0n, 4294967301n, 9007199254740993n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];

function storeWithImages(seeds: readonly bigint[]): { dir: string; store: JobStore; jobId: string } {
  const t = tempDir("diffuse-store-seeds-");
  temps.push(t);
  const store = JobStore.open(t.path);
  const jobId = "00000000-0000-4000-8000-000000000001";
  const params = {
    type: "txt2img" as const,
    prompt: "x",
    seed: String(seeds[0]),
    has_init_image: false,
    has_mask: false,
  };
  const now = new Date().toISOString();
  store.insert({ id: jobId, model: "m", type: "txt2img", params, source: "api", uploads: {}, createdAt: now });
  store.markRunning(jobId, now);
  const images = seeds.map((seed, index) => ({
    id: `10000000-0000-4000-8000-${String(index).padStart(12, "0")}`,
    jobId,
    index,
    seed,
    infotext: "x",
  }));
  store.markDone(jobId, { finishedAt: now, params, images, stepsDone: 1, stepsTotal: 1 });
  return { dir: t.path, store, jobId };
}

describe("the job store keeps seeds from 0 to 2^64-1 exactly (SQLite integers are signed 64-bit)", () => {
  it("reads back every seed it stored, 2^63 and 2^64-1 included, by image and by job, after reopening", () => {
    const { dir, store, jobId } = storeWithImages(SEEDS);
    store.close();
    const again = JobStore.open(dir);
    try {
      expect(
        again
          .imagesOf([jobId])
          .get(jobId)!
          .map((i) => i.seed),
      ).toEqual(SEEDS);
      expect(again.image("10000000-0000-4000-8000-000000000005")!.seed).toBe(2n ** 64n - 1n);
      expect(again.get(jobId)!.params.seed).toBe("0");
    } finally {
      again.close();
    }
  });

  it("stores a seed below 2^63 as itself, as earlier versions did, so their databases read the same; 2^63 and up as the two's complement", () => {
    const { dir, store } = storeWithImages(SEEDS);
    store.close();
    const raw = new Database(join(dir, "diffuse.sqlite"), { readonly: true });
    try {
      const stored = raw.prepare("SELECT seed FROM images ORDER BY idx").safeIntegers(true).pluck().all();
      expect(stored).toEqual([0n, 4294967301n, 9007199254740993n, 2n ** 63n - 1n, -(2n ** 63n), -1n]);
    } finally {
      raw.close();
    }
  });
});
