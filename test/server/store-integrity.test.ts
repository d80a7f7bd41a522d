import { createHash, randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { buildApp } from "../../src/server/app.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { StoreError } from "../../src/server/data-errors.js";
import { ImageFiles } from "../../src/server/image-files.js";
import { JobStore } from "../../src/server/store.js";
import { SCHEMA_VERSION } from "../../src/server/store-schema.js";
import { runCli } from "../helpers/cli.js";
import { tempDir, TINY_MODEL } from "./harness.js";

const temps: { remove: () => void }[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) t.remove();
});
function dataDir(): string {
  const t = tempDir("diffuse-integrity-");
  temps.push(t);
  return t.path;
}

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const db = (dir: string) => join(dir, "diffuse.sqlite");
const moveAside = (dir: string) => `mv ${dir} ${dir}.old`;

const params = {
  type: "txt2img" as const,
  prompt: "a lighthouse at dusk",
  seed: 1,
  has_init_image: false,
  has_mask: false,
};

/** A history of `n` finished jobs with one image file each, the store left open (the caller closes it or not). */
async function history(dir: string, n: number): Promise<{ store: JobStore; ids: string[] }> {
  const files = new ImageFiles(dir);
  const store = JobStore.open(dir, { images: files });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
    const imageId = `10000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
    store.insert({
      id,
      model: "m",
      type: "txt2img",
      params: { ...params, seed: i },
      source: "api",
      uploads: {},
      createdAt: new Date().toISOString(),
    });
    store.markRunning(id, new Date().toISOString());
    await files.write(imageId, new Uint8Array([137, 80, 78, 71]));
    store.markDone(id, {
      finishedAt: new Date().toISOString(),
      params,
      images: [{ id: imageId, jobId: id, index: 0, seed: BigInt(i), infotext: "x" }],
      stepsDone: 1,
      stepsTotal: 1,
    });
    ids.push(id);
  }
  return { store, ids };
}

/** A history of `n` jobs written in one transaction (many pages, in a moment), the store closed. */
function bulkHistory(dir: string, n: number): void {
  JobStore.open(dir).close();
  const raw = new Database(db(dir));
  const job = raw.prepare(
    "INSERT INTO jobs (id, model, type, state, params, source, created_at) VALUES (?, 'm', 'txt2img', 'done', ?, 'api', ?)",
  );
  const image = raw.prepare("INSERT INTO images (id, job_id, idx, seed, infotext) VALUES (?, ?, 0, ?, 'x')");
  raw.transaction(() => {
    for (let i = 0; i < n; i++) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
      job.run(id, JSON.stringify({ ...params, seed: i }), new Date().toISOString());
      image.run(`10000000-0000-4000-8000-${String(i).padStart(12, "0")}`, id, i);
    }
  })();
  raw.close();
}

/** What a kill -9 leaves: the database, its write-ahead log and index, copied while the server still has them open. */
async function crashImage(n: number): Promise<{ dir: string; ids: string[] }> {
  const live = dataDir();
  const { store, ids } = await history(live, n);
  const dir = dataDir();
  cpSync(live, dir, { recursive: true });
  store.close();
  expect(statSync(join(dir, "diffuse.sqlite-wal")).size).toBeGreaterThan(0);
  return { dir, ids };
}

function refusal(open: () => unknown): StoreError {
  try {
    open();
  } catch (e) {
    if (e instanceof StoreError) return e;
    throw new Error(`expected a StoreError, got ${(e as Error)?.stack ?? String(e)}`);
  }
  throw new Error("expected a StoreError, but the store opened");
}

async function appRefusal(dir: string): Promise<StoreError> {
  const config = resolveServerConfig({ modelPath: TINY_MODEL, dataDir: dir, port: 0, webRoot: join(dir, "no-web") });
  try {
    const app = await buildApp(config);
    await app.close();
  } catch (e) {
    if (e instanceof StoreError) return e;
    throw new Error(`expected a StoreError, got ${(e as Error)?.stack ?? String(e)}`);
  }
  throw new Error("expected a StoreError, but the server started");
}

describe("opening a data folder refuses a database it cannot trust, naming the file and what to do", () => {
  it("a file that is not SQLite at all (random bytes)", () => {
    const dir = dataDir();
    writeFileSync(db(dir), randomBytes(8192));
    const before = sha(db(dir));
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain(`${db(dir)} is damaged (it is not a SQLite database`);
    expect(e.message).toContain("restore it from a backup");
    expect(e.message).toContain(moveAside(dir));
    expect(sha(db(dir))).toBe(before);
  });

  it("a truncated database", () => {
    const dir = dataDir();
    bulkHistory(dir, 300);
    const size = statSync(db(dir)).size;
    expect(size).toBeGreaterThan(8 * 4096);
    truncateSync(db(dir), Math.floor(size / 2 / 4096) * 4096);
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toMatch(
      new RegExp(`^${db(dir)} is damaged \\(.+\\): restore it from a backup, or move the data folder aside`),
    );
  });

  it("a database with a damaged page in the middle", () => {
    const dir = dataDir();
    bulkHistory(dir, 300);
    const bytes = readFileSync(db(dir));
    const page = Math.floor(bytes.length / 4096 / 2);
    randomBytes(4096).copy(bytes, page * 4096);
    writeFileSync(db(dir), bytes);
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain(`${db(dir)} is damaged (`);
    expect(e.message).toContain(moveAside(dir));
  });

  it("a zero-byte database next to the images of an earlier history (through the server)", async () => {
    const dir = dataDir();
    const { store } = await history(dir, 3);
    store.close();
    writeFileSync(db(dir), "");
    const e = await appRefusal(dir);
    expect(e.message).toContain(
      `${db(dir)} is empty, but ${join(dir, "images")} holds 3 image(s) of an earlier history`,
    );
    expect(e.message).toContain(moveAside(dir));
    expect(statSync(db(dir)).size).toBe(0);
  });

  it("a missing database next to the images of an earlier history (through the server)", async () => {
    const dir = dataDir();
    (await history(dir, 2)).store.close();
    rmSync(db(dir));
    const e = await appRefusal(dir);
    expect(e.message).toContain(`${db(dir)} is missing, but ${join(dir, "images")} holds 2 image(s)`);
    expect(existsSync(db(dir))).toBe(false);
  });

  it("a database with our schema but no jobs, next to images (through the server)", async () => {
    const dir = dataDir();
    JobStore.open(dir).close();
    mkdirSync(join(dir, "images"), { recursive: true });
    writeFileSync(join(dir, "images", "10000000-0000-4000-8000-000000000000.png"), "png");
    const e = await appRefusal(dir);
    expect(e.message).toContain(`${db(dir)} is empty, but`);
  });

  it("a SQLite database of another program: refused and left as it was", () => {
    const dir = dataDir();
    const other = new Database(db(dir));
    other.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES ('keep me')");
    other.close();
    const before = sha(db(dir));
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain(
      `${db(dir)} is not a diffuse job database (its schema version is 0, and it holds notes)`,
    );
    expect(e.message).toContain("pass another --data folder");
    expect(sha(db(dir))).toBe(before);
  });

  it("a database with our version number but another schema: refused and left as it was", () => {
    const dir = dataDir();
    const other = new Database(db(dir));
    other.exec(
      "CREATE TABLE jobs (id TEXT); CREATE TABLE images (id TEXT); CREATE TABLE options (key TEXT, value TEXT); PRAGMA user_version = 1",
    );
    other.close();
    const before = sha(db(dir));
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain(
      `${db(dir)} is not a diffuse job database (table images has columns id; expected id, job_id, idx, seed, infotext)`,
    );
    expect(sha(db(dir))).toBe(before);
  });

  it("a database from a newer diffuse: refused and left as it was", async () => {
    const dir = dataDir();
    (await history(dir, 1)).store.close();
    const raw = new Database(db(dir));
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = sha(db(dir));
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toBe(
      `${db(dir)} was written by a newer diffuse (schema ${SCHEMA_VERSION + 1}; this one reads ${SCHEMA_VERSION}): upgrade diffuse, or pass another --data folder`,
    );
    expect(sha(db(dir))).toBe(before);
  });

  it("a write-ahead log with a damaged header: refused, and the log is kept for recovery", async () => {
    const { dir } = await crashImage(5);
    const wal = `${db(dir)}-wal`;
    const bytes = readFileSync(wal);
    randomBytes(32).copy(bytes, 0);
    writeFileSync(wal, bytes);
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain(
      `${wal}, the log of the latest changes to the job database, is damaged: its header is not that of a SQLite write-ahead log`,
    );
    expect(e.message).toContain(`mv ${wal} ${wal}.damaged`);
    expect(e.message).toContain(moveAside(dir));
    expect(readFileSync(wal).equals(bytes)).toBe(true);
  });

  it("a write-ahead log damaged before its last transactions: refused", async () => {
    const { dir } = await crashImage(10);
    const wal = `${db(dir)}-wal`;
    const bytes = readFileSync(wal);
    // A byte of the third frame's page: SQLite would stop there and drop every later commit.
    const frame = 32 + 2 * (24 + 4096);
    bytes[frame + 24 + 200] ^= 0xff;
    writeFileSync(wal, bytes);
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain("frame 3 of its");
    expect(e.message).toContain("SQLite would silently drop the transactions committed after it");
  });

  it("a write-ahead log whose database file is gone: refused, not started empty", async () => {
    const { dir } = await crashImage(3);
    rmSync(db(dir));
    const e = refusal(() => JobStore.open(dir));
    expect(e.message).toContain(`${db(dir)}-wal exists but ${db(dir)} does not: restore ${db(dir)} from a backup`);
    expect(existsSync(db(dir))).toBe(false);
  });

  it("a directory in place of the database file, or of its log: cannot be opened", () => {
    const dir = dataDir();
    mkdirSync(db(dir));
    expect(refusal(() => JobStore.open(dir)).message).toContain(
      `${db(dir)} is not a regular file, so it cannot be the job database's: move it aside`,
    );
    const dir2 = dataDir();
    JobStore.open(dir2).close();
    mkdirSync(`${db(dir2)}-wal`);
    expect(refusal(() => JobStore.open(dir2)).message).toContain(`${db(dir2)}-wal is not a regular file`);
  });

  it("a data folder that is a file (through the server)", async () => {
    const parent = dataDir();
    const dir = join(parent, "data");
    writeFileSync(dir, "not a folder");
    const e = await appRefusal(dir);
    expect(e.message).toMatch(
      new RegExp(`^cannot use ${dir}/images \\(ENOTDIR: .*\\): the user running diffuse needs to read and write it`),
    );
  });

  it("diffuse serve prints the refusal as one line and exits 2, without a stack trace", async () => {
    const dir = dataDir();
    writeFileSync(db(dir), randomBytes(8192));
    const r = await runCli(["serve", "--data", dir, "--port", "0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`diffuse: ${db(dir)} is damaged (it is not a SQLite database`);
    expect(r.stderr).toContain(moveAside(dir));
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("opening a data folder accepts what a crash or a new start leaves", () => {
  it("a kill -9 image (database, log and index): the whole history is there", async () => {
    const { dir, ids } = await crashImage(10);
    const store = JobStore.open(dir);
    expect(
      store
        .list(100)
        .map((j) => j.id)
        .sort(),
    ).toEqual(ids);
    store.close();
  });

  it("a kill -9 image whose shared-memory index is damaged: SQLite rebuilds it and the whole history is there", async () => {
    const { dir, ids } = await crashImage(10);
    const shm = `${db(dir)}-shm`;
    writeFileSync(shm, randomBytes(statSync(shm).size));
    const store = JobStore.open(dir);
    expect(
      store
        .list(100)
        .map((j) => j.id)
        .sort(),
    ).toEqual(ids);
    store.close();
  });

  it("a zero-byte database with no images: a new, empty history", () => {
    const dir = dataDir();
    writeFileSync(db(dir), "");
    const store = JobStore.open(dir, { images: new ImageFiles(dir) });
    expect(store.list(10)).toEqual([]);
    store.close();
  });
});
