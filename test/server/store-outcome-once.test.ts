import { afterEach, describe, expect, it } from "vitest";
import { JobStore } from "../../src/server/store.js";
import { tempDir } from "./harness.js";

const params = { type: "txt2img" as const, prompt: "x", seed: 1, has_init_image: false, has_mask: false };

describe("the job store records a job's outcome once", () => {
  const temps: { remove: () => void }[] = [];
  afterEach(() => temps.splice(0).forEach((t) => t.remove()));

  const running = () => {
    const t = tempDir("diffuse-store-once-");
    temps.push(t);
    const store = JobStore.open(t.path);
    const id = "00000000-0000-4000-8000-000000000001";
    const now = new Date().toISOString();
    store.insert({ id, model: "m", type: "txt2img", params, source: "api", uploads: {}, createdAt: now });
    store.markRunning(id, now);
    return { store, id };
  };
  const image = (jobId: string, n: number) => ({
    id: `10000000-0000-4000-8000-00000000000${n}`,
    jobId,
    index: 0,
    seed: BigInt(n),
    infotext: `image ${n}`,
  });
  const done = (jobId: string, n: number) => ({
    finishedAt: new Date().toISOString(),
    params,
    images: [image(jobId, n)],
    stepsDone: 1,
    stepsTotal: 1,
  });

  it("a second delivery of a finished job's result changes nothing and says so", () => {
    const { store, id } = running();
    expect(store.markDone(id, done(id, 1))).toBe(true);
    const first = store.get(id);
    expect(store.markDone(id, done(id, 2))).toBe(false);
    expect(store.get(id)).toEqual(first);
    expect(
      store
        .imagesOf([id])
        .get(id)!
        .map((i) => i.id),
    ).toEqual([image(id, 1).id]);
    expect(store.image(image(id, 2).id)).toBeUndefined();
    store.close();
  });

  it("a failure or cancel reported after the job finished does not replace its outcome", () => {
    const { store, id } = running();
    store.markDone(id, done(id, 1));
    expect(store.markFinished(id, "failed", "late failure", new Date().toISOString())).toBe(false);
    expect(store.get(id)!.state).toBe("done");
    expect(store.get(id)!.error).toBeNull();
    store.close();
  });

  it("a result delivered after the job was cancelled is not recorded", () => {
    const { store, id } = running();
    expect(store.markFinished(id, "cancelled", "cancelled at step 1 of 2", new Date().toISOString())).toBe(true);
    expect(store.markDone(id, done(id, 1))).toBe(false);
    expect(store.get(id)!.state).toBe("cancelled");
    expect(store.imagesOf([id]).get(id)).toEqual([]);
    store.close();
  });
});
