import { randomUUID } from "node:crypto";
import sharp from "sharp";
import type { App } from "../../src/server/app.js";

/**
 * A finished job with one image, written straight into a server's history and image folder, so tests of the
 * routes that serve them (status, events, images) get real answers from a server without a model. It is filed
 * under another model's name: the server's queue never takes it.
 */
export async function seedFinishedJob(app: App): Promise<{ jobId: string; imageId: string; png: Buffer }> {
  const { store, files } = app.context;
  const jobId = randomUUID();
  const imageId = randomUUID();
  const params = {
    type: "txt2img" as const,
    prompt: "seeded",
    seed: 1,
    steps: 1,
    has_init_image: false,
    has_mask: false,
  };
  const now = new Date().toISOString();
  store.insert({
    id: jobId,
    model: "seeded-model",
    type: "txt2img",
    params,
    source: "api",
    uploads: {},
    createdAt: now,
  });
  store.markRunning(jobId, now);
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } })
    .png()
    .toBuffer();
  await files.write(imageId, png);
  store.markDone(jobId, {
    finishedAt: now,
    params,
    images: [{ id: imageId, jobId, index: 0, seed: 1n, infotext: "seeded\nSteps: 1" }],
    stepsDone: 1,
    stepsTotal: 1,
  });
  return { jobId, imageId, png };
}
