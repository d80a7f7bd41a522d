import { afterEach, describe, expect, it } from "vitest";
import { join } from "node:path";
import Database from "better-sqlite3";
import { JobStore } from "../../src/server/store.js";
import { SCHEMA_VERSION } from "../../src/server/store-schema.js";
import { tempDir } from "./harness.js";

const dirs: { remove: () => void }[] = [];
afterEach(() => dirs.splice(0).forEach((d) => d.remove()));
function dataDir(): string {
  const d = tempDir("diffuse-control-store-");
  dirs.push(d);
  return d.path;
}

const unit = { model: "controlnet-tiny [e3b0c442]", module: "scribble" };
const newJob = (id: string, controlImages?: Uint8Array[]) => ({
  id,
  model: "m",
  type: "txt2img" as const,
  source: "api" as const,
  createdAt: new Date().toISOString(),
  params: {
    type: "txt2img" as const,
    prompt: "x",
    seed: 1,
    has_init_image: false,
    has_mask: false,
    ...(controlImages ? { controlnet: controlImages.map(() => unit) } : {}),
  },
  uploads: controlImages ? { controlImages } : {},
});

describe("a job's ControlNet control images in the job database", () => {
  it("are kept in unit order and read back after the database is closed and opened again (a restart)", () => {
    const dir = dataDir();
    const a = Uint8Array.from([1, 2, 3]),
      b = Uint8Array.from([9, 8]);
    let store = JobStore.open(dir);
    store.insert(newJob("11111111-1111-4111-8111-111111111111", [a, b]));
    store.insert(newJob("22222222-2222-4222-8222-222222222222"));
    store.close();
    store = JobStore.open(dir);
    try {
      expect(store.uploads("11111111-1111-4111-8111-111111111111").controlImages?.map((x) => [...x])).toEqual([
        [1, 2, 3],
        [9, 8],
      ]);
      expect(store.uploads("22222222-2222-4222-8222-222222222222").controlImages).toBeUndefined();
      expect(store.get("11111111-1111-4111-8111-111111111111")!.params.controlnet).toEqual([unit, unit]);
    } finally {
      store.close();
    }
  });

  it("a history written before control images existed (schema 1) is upgraded in place, its jobs kept", () => {
    const dir = dataDir();
    const v1 = new Database(join(dir, "diffuse.sqlite"));
    v1.exec(`
      CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, model TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL,
        params TEXT NOT NULL, source TEXT NOT NULL, init_image BLOB, mask BLOB, interruptions INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
        started_at TEXT, finished_at TEXT, error TEXT, steps_done INTEGER, steps_total INTEGER);
      CREATE INDEX jobs_by_state ON jobs (state, model, seq);
      CREATE TABLE images (id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs (id), idx INTEGER NOT NULL, seed INTEGER NOT NULL, infotext TEXT NOT NULL);
      CREATE INDEX images_by_job ON images (job_id, idx);
      CREATE TABLE options (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO jobs (id, model, type, state, params, source, created_at) VALUES ('33333333-3333-4333-8333-333333333333', 'm', 'txt2img', 'queued', '{"type":"txt2img","prompt":"old","seed":1,"has_init_image":false,"has_mask":false}', 'api', '2026-01-01T00:00:00.000Z');
      PRAGMA user_version = 1;`);
    v1.close();
    const store = JobStore.open(dir);
    try {
      expect(store.get("33333333-3333-4333-8333-333333333333")!.params.prompt).toBe("old");
      store.insert(newJob("44444444-4444-4444-8444-444444444444", [Uint8Array.from([5])]));
      expect([...store.uploads("44444444-4444-4444-8444-444444444444").controlImages![0]!]).toEqual([5]);
    } finally {
      store.close();
    }
    const raw = new Database(join(dir, "diffuse.sqlite"), { readonly: true });
    expect(raw.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    raw.close();
  });
});
