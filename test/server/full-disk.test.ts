import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { ApiError, JobCreated, JobStatus } from "../../src/server/api-types.js";
import { buildApp, type App } from "../../src/server/app.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { StorageFullError } from "../../src/server/data-errors.js";
import { ImageFiles, type FileWriter } from "../../src/server/image-files.js";
import { JobStore } from "../../src/server/store.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, postJson, tempDir, TINY_MODEL, waitForJob } from "./harness.js";

/** The store's own connection: `max_page_count` is a setting of one connection, not of the file. */
function sqliteOf(store: JobStore): Database.Database {
  return (store as unknown as { db: Database.Database }).db;
}

/**
 * What a full disk looks like to SQLite: the file may not grow (`max_page_count` at its current size), and the
 * space left in its pages is taken by filler rows, so any write that needs room fails with SQLITE_FULL.
 */
function fillDatabase(db: Database.Database): void {
  db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
  const insert = db.prepare(
    "INSERT INTO jobs (id, model, type, state, params, source, created_at) VALUES (?, 'filler', 'txt2img', 'done', ?, 'api', '')",
  );
  for (let size = 4096; size >= 1; size = Math.floor(size / 2)) {
    for (;;) {
      try {
        insert.run(randomUUID(), JSON.stringify({ pad: "x".repeat(size) }));
      } catch (e) {
        if ((e as { code?: string }).code === "SQLITE_FULL") break;
        throw e;
      }
    }
  }
}

/** Space comes back: the file may grow again. */
function freeDatabase(db: Database.Database): void {
  db.pragma("max_page_count = 1073741823");
}

function enospc(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), {
    code: "ENOSPC",
    errno: -28,
    syscall: "write",
    path,
  });
}

const params = { type: "txt2img" as const, prompt: "x", seed: 1, has_init_image: false, has_mask: false };
const newJob = (id: string) => ({
  id,
  model: "m",
  type: "txt2img" as const,
  params,
  source: "api" as const,
  uploads: {},
  createdAt: new Date().toISOString(),
});

describe("the store on a full disk", () => {
  it("crash recovery that cannot write says the disk is full, naming the data folder, and succeeds once there is room", () => {
    const data = tempDir("diffuse-full-");
    try {
      const id = "00000000-0000-4000-8000-000000000001";
      let store = JobStore.open(data.path);
      store.insert(newJob(id));
      store.markRunning(id, new Date().toISOString());
      store.close();
      store = JobStore.open(data.path);
      store.recover(new Date().toISOString()); // first interruption: queued again
      store.markRunning(id, new Date().toISOString());
      store.close();

      // Second interruption: recovery must write the failure (a longer row), and the disk is full.
      store = JobStore.open(data.path);
      fillDatabase(sqliteOf(store));
      const attempt = (() => {
        try {
          store.recover(new Date().toISOString());
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(attempt).toBeInstanceOf(StorageFullError);
      expect((attempt as Error).message).toContain(data.path);
      expect(store.get(id)!.state).toBe("running");
      freeDatabase(sqliteOf(store));
      expect(store.recover(new Date().toISOString())).toEqual({ requeued: [], failed: [id] });
      store.close();
    } finally {
      data.remove();
    }
  });
});

describe.skipIf(!HAVE_REFERENCE)("the queue on a full disk (sd15-tiny)", () => {
  const cache = tempDir("diffuse-cache-");
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  afterAll(() => cache.remove());

  /** A server whose image writes go through `writer` (called with the 1-based number of the write). */
  async function start(
    writer: (n: number, path: string, bytes: Uint8Array, app: App) => Promise<void>,
  ): Promise<{ app: App; base: string; dataDir: string }> {
    const data = tempDir("diffuse-full-");
    const config = {
      ...resolveServerConfig({
        modelPath: TINY_MODEL,
        dataDir: data.path,
        port: 0,
        webRoot: join(data.path, "no-web"),
      }),
      loadOptions: { threads: 1, cacheDir: cache.path },
    };
    let writes = 0;
    let app: App | undefined;
    const fileWriter: FileWriter = (path, bytes) => writer(++writes, path, bytes, app!);
    app = await buildApp(config, { files: new ImageFiles(data.path, fileWriter) });
    const base = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
    cleanups.push(async () => {
      await app!.close();
      data.remove();
    });
    return { app, base, dataDir: data.path };
  }

  const pngs = (dataDir: string) => readdirSync(join(dataDir, "images"));

  it("an image write failing with ENOSPC fails the job with the reason, removes the images it had written, and the next job runs", async () => {
    const s = await start(async (n, path, bytes) => {
      if (n === 2) {
        // Half the PNG lands, then the disk is full: what a real write does.
        await writeFile(path, bytes.subarray(0, bytes.length >> 1));
        throw enospc(path);
      }
      await writeFile(path, bytes);
    });
    const a = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, {
      prompt: "a red square",
      steps: 2,
      seed: 1,
      batch_size: 2,
    });
    const b = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a blue circle", steps: 2, seed: 2 });
    expect([a.status, b.status]).toEqual([202, 202]);

    const failed = await waitForJob(s.base, a.body.id, 20_000);
    expect(failed.state).toBe("failed");
    expect(failed.error).toMatch(/^no space left on the disk of the data folder /);
    expect(failed.error).toContain(`${s.dataDir} (writing image`);
    expect(failed.error).toMatch(/free space/);
    expect(failed.images).toEqual([]);

    const done = await waitForJob(s.base, b.body.id, 20_000);
    expect(done.state).toBe("done");
    // Only the second job's image: nothing of the failed one (its first image, the half-written second).
    expect(pngs(s.dataDir)).toEqual([`${done.images[0]!.id}.png`]);
  });

  it("a database too full to record the outcome: the job is failed with the reason, kept until the database takes it, and the queue resumes by itself", async () => {
    const s = await start(async (n, path, bytes, app) => {
      // The disk fills up while the first job's image is written: its image lands, its outcome cannot.
      if (n === 1) fillDatabase(sqliteOf(app.context.store));
      await writeFile(path, bytes);
    });
    const store = s.app.context.store;
    const a = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a red square", steps: 2, seed: 1 });
    const b = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a blue circle", steps: 2, seed: 2 });
    expect([a.status, b.status]).toEqual([202, 202]);

    const failed = await waitForJob(s.base, a.body.id, 10_000);
    expect(failed.state).toBe("failed");
    expect(failed.error).toMatch(/^no space left on the disk of the data folder /);
    expect(failed.error).toContain(`${s.dataDir} (recording the images of job`);
    // Its image was written before the database refused it, and is gone with it.
    expect(pngs(s.dataDir)).toEqual([]);

    const cancel = await fetch(`${s.base}/api/v1/jobs/${a.body.id}`, { method: "DELETE" });
    expect(cancel.status).toBe(409);
    expect(((await cancel.json()) as ApiError).message).toMatch(/already failed/);

    // New work is refused with what to do, on both APIs, while the disk is full.
    const ours = await postJson<ApiError>(`${s.base}/api/v1/jobs`, { prompt: "a green star", steps: 2 });
    expect(ours.status).toBe(507);
    expect(ours.body.error).toBe("insufficient_storage");
    expect(ours.body.message).toContain(s.dataDir);
    expect(ours.body.message).toMatch(/free space/);
    const a1111 = await postJson<{ error: string; detail: string; errors: string }>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "a green star",
      steps: 2,
    });
    expect(a1111.status).toBe(507);
    expect(a1111.body.detail).toContain(s.dataDir);
    expect(a1111.body.errors).toBe(a1111.body.detail);

    freeDatabase(sqliteOf(store));
    // No restart: the failure lands in the database, the job queued behind it runs, new jobs are taken.
    const done = await waitForJob(s.base, b.body.id, 20_000);
    expect(done.state).toBe("done");
    expect(store.get(a.body.id)).toMatchObject({ state: "failed", error: failed.error });
    const c = await postJson<JobCreated>(`${s.base}/api/v1/jobs`, { prompt: "a green star", steps: 2, seed: 3 });
    expect(c.status).toBe(202);
    expect((await waitForJob(s.base, c.body.id, 20_000)).state).toBe("done");
    const list = await getJson<{ jobs: JobStatus[] }>(`${s.base}/api/v1/jobs?limit=100`);
    expect(list.jobs.filter((j) => j.state === "running")).toEqual([]);
  });
});
