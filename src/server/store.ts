import Database from "better-sqlite3";
import { jsonTooDeep, MAX_JSON_DEPTH } from "../json-depth.js";
import { stringifyExact } from "../json-exact.js";
import type { JobParams, JobState, JobType } from "./api-types.js";
import { isDiskFull, StorageFullError } from "./data-errors.js";
import { asStoreError, checkDatabase, type ExistingImages } from "./store-checks.js";
import { MIGRATIONS, SCHEMA, SCHEMA_VERSION } from "./store-schema.js";

/** Which surface accepted a job: our API or the AUTOMATIC1111-compatible one. */
export type JobSource = "api" | "a1111";

export interface JobRecord {
  /** Acceptance order: the queue runs queued jobs by ascending seq. */
  seq: number;
  id: string;
  model: string;
  type: JobType;
  state: JobState;
  params: JobParams;
  source: JobSource;
  /** How many times the server died while this job ran. */
  interruptions: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  stepsDone: number | null;
  stepsTotal: number | null;
}

export interface ImageRecord {
  id: string;
  jobId: string;
  index: number;
  /** 0 to 2^64 - 1, exact. */
  seed: bigint;
  infotext: string;
}

export interface Uploads {
  initImage?: Uint8Array;
  mask?: Uint8Array;
  /** The control image of each ControlNet unit (params.controlnet), in unit order. */
  controlImages?: Uint8Array[];
}

export interface NewJob {
  id: string;
  model: string;
  type: JobType;
  params: JobParams;
  source: JobSource;
  uploads: Uploads;
  createdAt: string;
  /** Stored already failed with this reason (a refused prompt): one write, so it can never be left queued. */
  refused?: string;
}

export interface RecoveryReport {
  /** Jobs that were running when the server died, queued again at their original place. */
  requeued: string[];
  /** Jobs that had already been interrupted once and died again: failed with the reason. */
  failed: string[];
}

/** A job whose outcome is not recorded yet. */
const UNFINISHED = "state IN ('queued', 'running')";

/**
 * Columns of an image. SQLite integers are signed 64-bit and seeds run to 2^64 - 1, so the `seed` column holds
 * the seed's two's complement (seeds from 2^63 up are stored negative; every seed below, the whole range of
 * earlier versions, is stored as itself, so older databases need no migration). It is read back as text,
 * because better-sqlite3 would hand an integer beyond 2^53 over as a rounded number.
 */
const IMAGE_COLUMNS = "id, job_id, idx, CAST(seed AS TEXT) AS seed, infotext";

/** Columns of a job without its uploads: listings must not drag megabytes of images through memory. */
const JOB_COLUMNS =
  "seq, id, model, type, state, params, source, interruptions, created_at, started_at, finished_at, error, steps_done, steps_total";

interface JobRow {
  seq: number;
  id: string;
  model: string;
  type: string;
  state: string;
  params: string;
  source: string;
  interruptions: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  steps_done: number | null;
  steps_total: number | null;
}

interface ImageRow {
  id: string;
  job_id: string;
  idx: number;
  /** The stored signed 64-bit value as decimal text (see IMAGE_COLUMNS). */
  seed: string;
  infotext: string;
}

/**
 * Jobs, their outputs' metadata and the A1111 options, in SQLite under the data folder. Every state change is
 * one committed transaction before anyone is told about it, so an answer the server gave survives a crash.
 */
export class JobStore {
  private constructor(
    private readonly db: Database.Database,
    private readonly dataDir: string,
  ) {}

  /**
   * Opens the data folder's job database, creating it when there is none. A database that cannot be used as it
   * is (damaged, not ours, newer, unreadable, or empty next to `images` of an earlier history) is refused with
   * a StoreError that says what to do, and left as it was.
   */
  static open(dataDir: string, opts: { images?: ExistingImages } = {}): JobStore {
    const { file, isNew, upgradeFrom } = checkDatabase(dataDir, opts.images);
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      db.pragma("busy_timeout = 5000");
      // SQLite opens a file it may not write read-only without a word: find out now, not at the first job.
      db.exec("BEGIN IMMEDIATE");
      db.exec("ROLLBACK");
      // WAL: readers (status polls) never wait for the writer; FULL: a commit is on disk before we answer.
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      if (isNew) {
        const created = db;
        created.transaction(() => {
          created.exec(SCHEMA);
          created.pragma(`user_version = ${SCHEMA_VERSION}`);
        })();
      }
      if (upgradeFrom !== undefined) upgrade(db, upgradeFrom);
      return new JobStore(db, dataDir);
    } catch (e) {
      db?.close();
      throw asStoreError(e, file, dataDir);
    }
  }

  insert(job: NewJob): JobRecord {
    const refused = job.refused !== undefined;
    const insertJob = this.db.prepare(
      `INSERT INTO jobs (id, model, type, state, params, source, init_image, mask, created_at, error, finished_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertControl = this.db.prepare("INSERT INTO control_images (job_id, idx, image) VALUES (?, ?, ?)");
    // One transaction: a job is never seen without its control images.
    this.write("recording a new job", () =>
      this.db.transaction(() => {
        insertJob.run(
          job.id,
          job.model,
          job.type,
          refused ? "failed" : "queued",
          JSON.stringify(job.params),
          job.source,
          bytesOrNull(job.uploads.initImage),
          bytesOrNull(job.uploads.mask),
          job.createdAt,
          job.refused ?? null,
          refused ? job.createdAt : null,
        );
        for (const [i, image] of (job.uploads.controlImages ?? []).entries())
          insertControl.run(job.id, i, bytesOrNull(image));
      })(),
    );
    return this.get(job.id)!;
  }

  get(id: string): JobRecord | undefined {
    const row = this.db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`).get(id) as JobRow | undefined;
    return row && toJob(row);
  }

  /** Newest first. */
  list(limit: number): JobRecord[] {
    return (this.db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?`).all(limit) as JobRow[]).map(
      toJob,
    );
  }

  uploads(id: string): Uploads {
    const row = this.db.prepare("SELECT init_image, mask FROM jobs WHERE id = ?").get(id) as
      | { init_image: Buffer | null; mask: Buffer | null }
      | undefined;
    const controls = this.db
      .prepare("SELECT image FROM control_images WHERE job_id = ? ORDER BY idx")
      .pluck()
      .all(id) as Buffer[];
    return {
      initImage: row?.init_image ?? undefined,
      mask: row?.mask ?? undefined,
      ...(controls.length ? { controlImages: controls } : {}),
    };
  }

  /**
   * Number of queued jobs ahead of this one (0 = next to run) among those of the given models (default: its own):
   * a queue that runs jobs of several models in one order counts them all.
   */
  position(job: Pick<JobRecord, "seq" | "model">, models: readonly string[] = [job.model]): number {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued' AND model IN (${marks(models)}) AND seq < ?`)
      .get(...models, job.seq) as { n: number };
    return row.n;
  }

  /** The oldest queued job of any of the models. */
  nextQueued(models: string | readonly string[]): JobRecord | undefined {
    const list = typeof models === "string" ? [models] : models;
    const row = this.db
      .prepare(
        `SELECT ${JOB_COLUMNS} FROM jobs WHERE state = 'queued' AND model IN (${marks(list)}) ORDER BY seq LIMIT 1`,
      )
      .get(...list) as JobRow | undefined;
    return row && toJob(row);
  }

  /** Queued jobs of the models, in the order they run. */
  queuedIds(models: string | readonly string[]): string[] {
    const list = typeof models === "string" ? [models] : models;
    return (
      this.db
        .prepare(`SELECT id FROM jobs WHERE state = 'queued' AND model IN (${marks(list)}) ORDER BY seq`)
        .all(...list) as { id: string }[]
    ).map((r) => r.id);
  }

  /** Whether a job of the model is queued or running: its pipeline is still needed. */
  hasUnfinished(model: string): boolean {
    return this.db.prepare(`SELECT 1 FROM jobs WHERE ${UNFINISHED} AND model = ? LIMIT 1`).get(model) !== undefined;
  }

  /** Queued and running jobs of a model, oldest first: what a queue backend holds or runs for them. */
  unfinished(model: string): JobRecord[] {
    return (
      this.db
        .prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE ${UNFINISHED} AND model = ? ORDER BY seq`)
        .all(model) as JobRow[]
    ).map(toJob);
  }

  /** Jobs waiting for a model other than the one being served: reported at startup so none waits unnoticed. */
  queuedForOtherModels(model: string): { model: string; count: number }[] {
    return this.db
      .prepare("SELECT model, COUNT(*) AS count FROM jobs WHERE state = 'queued' AND model != ? GROUP BY model")
      .all(model) as {
      model: string;
      count: number;
    }[];
  }

  markRunning(id: string, startedAt: string): void {
    this.write(`starting job ${id}`, () =>
      this.db
        .prepare("UPDATE jobs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'")
        .run(startedAt, id),
    );
  }

  /**
   * The job's new state and its images (their files are already on disk), in one transaction, if it is not
   * finished already: a job's outcome is recorded once, however often a queue delivers it. False when it was
   * finished (nothing written).
   */
  markDone(
    id: string,
    done: { finishedAt: string; params: JobParams; images: ImageRecord[]; stepsDone: number; stepsTotal: number },
  ): boolean {
    const insertImage = this.db.prepare("INSERT INTO images (id, job_id, idx, seed, infotext) VALUES (?, ?, ?, ?, ?)");
    const update = this.db.prepare(
      `UPDATE jobs SET state = 'done', finished_at = ?, params = ?, steps_done = ?, steps_total = ?, error = NULL WHERE id = ? AND ${UNFINISHED}`,
    );
    return this.write(`recording the images of job ${id}`, () =>
      this.db.transaction(() => {
        if (update.run(done.finishedAt, JSON.stringify(done.params), done.stepsDone, done.stepsTotal, id).changes === 0)
          return false;
        for (const img of done.images)
          insertImage.run(img.id, id, img.index, BigInt.asIntN(64, img.seed), img.infotext);
        return true;
      })(),
    );
  }

  /**
   * failed or cancelled, with the reason, if the job is not finished already (false then); progress is kept so a
   * cancelled job shows how far it got.
   */
  markFinished(
    id: string,
    state: "failed" | "cancelled",
    error: string,
    finishedAt: string,
    progress?: { step: number; steps: number },
  ): boolean {
    const r = this.write(`recording the outcome of job ${id}`, () =>
      this.db
        .prepare(
          `UPDATE jobs SET state = ?, error = ?, finished_at = ?, steps_done = COALESCE(?, steps_done), steps_total = COALESCE(?, steps_total) WHERE id = ? AND ${UNFINISHED}`,
        )
        .run(state, error, finishedAt, progress?.step ?? null, progress?.steps ?? null, id),
    );
    return r.changes === 1;
  }

  /** Cancels a job only if it is still queued (the worker may have just taken it); true when it was. */
  cancelQueued(id: string, finishedAt: string): boolean {
    const r = this.write(`cancelling job ${id}`, () =>
      this.db
        .prepare(
          "UPDATE jobs SET state = 'cancelled', error = 'cancelled while queued', finished_at = ? WHERE id = ? AND state = 'queued'",
        )
        .run(finishedAt, id),
    );
    return r.changes === 1;
  }

  /** A graceful shutdown puts the running job back at its place; that is not a crash, so it does not count. */
  requeue(id: string): void {
    this.write(`putting job ${id} back in the queue`, () =>
      this.db.prepare("UPDATE jobs SET state = 'queued', started_at = NULL WHERE id = ? AND state = 'running'").run(id),
    );
  }

  /**
   * After a crash: a job found running was interrupted. The first time it is queued again (it keeps its seq, so
   * it runs first); the second time it is failed with the reason, since it may be what kills the server.
   */
  recover(now: string): RecoveryReport {
    const recoverAll = this.db.transaction((): RecoveryReport => {
      const report: RecoveryReport = { requeued: [], failed: [] };
      const running = this.db
        .prepare("SELECT id, interruptions FROM jobs WHERE state = 'running' ORDER BY seq")
        .all() as { id: string; interruptions: number }[];
      for (const r of running) {
        if (r.interruptions === 0) {
          this.db
            .prepare("UPDATE jobs SET state = 'queued', started_at = NULL, interruptions = 1 WHERE id = ?")
            .run(r.id);
          report.requeued.push(r.id);
        } else {
          this.db
            .prepare(
              "UPDATE jobs SET state = 'failed', interruptions = interruptions + 1, finished_at = ?, error = ? WHERE id = ?",
            )
            .run(
              now,
              "the server stopped abruptly (crash or kill) twice while running this job, so it was not retried again; " +
                "check the server log and memory, then submit it again",
              r.id,
            );
          report.failed.push(r.id);
        }
      }
      return report;
    });
    return this.write("recovering the jobs that a crash interrupted", () => recoverAll());
  }

  image(id: string): ImageRecord | undefined {
    const row = this.db.prepare(`SELECT ${IMAGE_COLUMNS} FROM images WHERE id = ?`).get(id) as ImageRow | undefined;
    return row && toImage(row);
  }

  /** Images of several jobs at once, each job's in batch order. */
  imagesOf(jobIds: readonly string[]): Map<string, ImageRecord[]> {
    const out = new Map<string, ImageRecord[]>(jobIds.map((id) => [id, []]));
    if (jobIds.length === 0) return out;
    const rows = this.db
      .prepare(
        `SELECT ${IMAGE_COLUMNS} FROM images WHERE job_id IN (${jobIds.map(() => "?").join(",")}) ORDER BY job_id, idx`,
      )
      .all(...jobIds) as ImageRow[];
    for (const r of rows) out.get(r.job_id)?.push(toImage(r));
    return out;
  }

  /**
   * The A1111 options. A value that cannot be read back is left out (`unreadableOptions` names it) rather than
   * failing every read: one nested deeper than the HTTP edge now accepts, as an older version could store, or
   * one that is not JSON. Setting the key again replaces it.
   */
  options(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const r of this.optionRows()) {
      const value = readOption(r.value);
      if (value !== UNREADABLE) out[r.key] = value;
    }
    return out;
  }

  unreadableOptions(): string[] {
    return this.optionRows()
      .filter((r) => readOption(r.value) === UNREADABLE)
      .map((r) => r.key);
  }

  private optionRows(): { key: string; value: string }[] {
    return this.db.prepare("SELECT key, value FROM options").all() as { key: string; value: string }[];
  }

  setOptions(values: Record<string, unknown>): void {
    const put = this.db.prepare(
      "INSERT INTO options (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    this.write("saving options", () =>
      this.db.transaction(() => {
        // A top-level `seed` of a request body may be a bigint (json-body.ts), which JSON.stringify refuses.
        for (const [k, v] of Object.entries(values)) put.run(k, stringifyExact(v ?? null));
      })(),
    );
  }

  close(): void {
    this.db.close();
  }

  /** Runs one write; a full disk becomes a StorageFullError that names the data folder and what to do. */
  private write<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (isDiskFull(e)) throw new StorageFullError(this.dataDir, what);
      throw e;
    }
  }
}

/** Brings a database of an earlier schema version up to this one, in one transaction (checked before, store-checks.ts). */
function upgrade(db: Database.Database, from: number): void {
  db.transaction(() => {
    for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS.get(v)!.upgrade);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

const UNREADABLE = Symbol("unreadable");

function readOption(text: string): unknown {
  if (jsonTooDeep(text, MAX_JSON_DEPTH)) return UNREADABLE;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return UNREADABLE;
  }
}

function bytesOrNull(b: Uint8Array | undefined): Buffer | null {
  return b === undefined ? null : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function toJob(r: JobRow): JobRecord {
  return {
    seq: r.seq,
    id: r.id,
    model: r.model,
    type: r.type as JobType,
    state: r.state as JobState,
    params: JSON.parse(r.params) as JobParams,
    source: r.source as JobSource,
    interruptions: r.interruptions,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    error: r.error,
    stepsDone: r.steps_done,
    stepsTotal: r.steps_total,
  };
}

function toImage(r: ImageRow): ImageRecord {
  return { id: r.id, jobId: r.job_id, index: r.idx, seed: BigInt.asUintN(64, BigInt(r.seed)), infotext: r.infotext };
}

/** One `?` per value, for an `IN (...)` list (SQLite takes an empty one: nothing matches). */
function marks(values: readonly unknown[]): string {
  return values.map(() => "?").join(", ");
}
