import { closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  fileAccessError,
  isDiskFull,
  moveAsideAdvice,
  shellQuote,
  StorageFullError,
  StoreError,
} from "./data-errors.js";
import { DB_FILE, MIGRATIONS, SCHEMA, SCHEMA_VERSION } from "./store-schema.js";
import { walDamage } from "./wal-check.js";

/** The image files of the data folder, which an empty or missing database would orphan. */
export interface ExistingImages {
  dir: string;
  count(): number;
}

export interface CheckedDatabase {
  file: string;
  /** No database yet (absent, zero bytes, or no tables): the caller creates the schema. */
  isNew: boolean;
  /** The version of a database of an earlier schema (checked to be that version's): the caller runs its MIGRATIONS. */
  upgradeFrom?: number;
}

/**
 * Everything that must hold before the server writes to a data folder's job database, checked without
 * altering it: the files are files we may read and write, the write-ahead log is intact, SQLite finds no damage
 * (quick_check), the schema is this version's, and an empty database does not sit next to an earlier history's
 * images. Any failure is a StoreError naming the file and what to do (restore it, or move it aside).
 */
export function checkDatabase(dataDir: string, images?: ExistingImages): CheckedDatabase {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (e) {
    throw fileAccessError(e, dataDir, dataDir);
  }
  const file = join(dataDir, DB_FILE);
  for (const path of [file, `${file}-wal`, `${file}-shm`]) checkFile(path, dataDir);

  if (!existsSync(file)) {
    // A -wal without its database is the history's latest part with nothing to apply it to.
    if (existsSync(`${file}-wal`) && statSync(`${file}-wal`).size > 0)
      throw new StoreError(
        `${file}-wal exists but ${file} does not: restore ${file} from a backup, or ${moveAsideAdvice(dataDir)}`,
      );
    refuseOverImages(file, "missing", dataDir, images);
    return { file, isNew: true };
  }
  const damage = walDamage(`${file}-wal`);
  if (damage !== undefined) {
    throw new StoreError(
      `${file}-wal, the log of the latest changes to the job database, is damaged: ${damage}. ` +
        `Restore ${file} and ${file}-wal from a backup; or keep the history up to its last checkpoint, losing the latest jobs: ` +
        `mv ${shellQuote(`${file}-wal`)} ${shellQuote(`${file}-wal.damaged`)}; or ${moveAsideAdvice(dataDir)}`,
    );
  }

  // Read-only: a database that is refused is left exactly as it was found.
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    const problems = (db.pragma("quick_check(5)") as { quick_check: string }[]).map((r) => r.quick_check);
    if (problems.length !== 1 || problems[0] !== "ok") throw damaged(file, dataDir, problems.join("; "));
    const version = db.pragma("user_version", { simple: true }) as number;
    const tables = tablesOf(db);
    if (tables.length === 0 && version === 0) {
      refuseOverImages(file, "empty", dataDir, images);
      return { file, isNew: true };
    }
    if (version > SCHEMA_VERSION) {
      throw new StoreError(
        `${file} was written by a newer diffuse (schema ${version}; this one reads ${SCHEMA_VERSION}): upgrade diffuse, or pass another --data folder`,
      );
    }
    const earlier = MIGRATIONS.get(version);
    const mismatch =
      version === SCHEMA_VERSION
        ? schemaMismatch(db, SCHEMA)
        : earlier
          ? schemaMismatch(db, earlier.schema)
          : `its schema version is ${version}, and it holds ${tables.join(", ")}`;
    if (mismatch !== undefined) {
      throw new StoreError(
        `${file} is not a diffuse job database (${mismatch}), so it was left as it is: pass another --data folder; ` +
          `if it is diffuse's and was damaged, restore it from a backup, or ${moveAsideAdvice(dataDir)}`,
      );
    }
    if (db.prepare("SELECT 1 FROM jobs LIMIT 1").get() === undefined) refuseOverImages(file, "empty", dataDir, images);
    return { file, isNew: false, ...(earlier ? { upgradeFrom: version } : {}) };
  } catch (e) {
    throw asStoreError(e, file, dataDir);
  } finally {
    db?.close();
  }
}

/** A SQLite error on the job database, as a StoreError (or StorageFullError) that says what to do. */
export function asStoreError(e: unknown, file: string, dataDir: string): unknown {
  if (e instanceof StoreError || e instanceof StorageFullError) return e;
  if (isDiskFull(e)) return new StorageFullError(dataDir, `opening ${file}`);
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return e;
  const message = (e as Error).message;
  if (code === "SQLITE_NOTADB") return damaged(file, dataDir, `it is not a SQLite database: ${message}`);
  if (code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_IOERR"))
    return damaged(file, dataDir, `${code}: ${message}`);
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new StoreError(
      `${file} is locked by another process (${message}): stop it (another diffuse serve with the same --data?) and start again`,
    );
  }
  if (
    code.startsWith("SQLITE_READONLY") ||
    code.startsWith("SQLITE_CANTOPEN") ||
    code === "SQLITE_PERM" ||
    code === "SQLITE_AUTH"
  ) {
    return fileAccessError(Object.assign(new Error(message), { code }), file, dataDir);
  }
  return e;
}

function damaged(file: string, dataDir: string, detail: string): StoreError {
  return new StoreError(`${file} is damaged (${detail}): restore it from a backup, or ${moveAsideAdvice(dataDir)}`);
}

/** The path is absent, or a regular file this process can open for reading and writing. */
function checkFile(path: string, dataDir: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw fileAccessError(e, path, dataDir);
  }
  if (!isFile) {
    throw new StoreError(
      `${path} is not a regular file, so it cannot be the job database's: move it aside (mv ${shellQuote(path)} ${shellQuote(`${path}.old`)}), or pass another --data folder`,
    );
  }
  // SQLite would open an unwritable file read-only without a word and fail at the first write.
  try {
    closeSync(openSync(path, "r+"));
  } catch (e) {
    throw fileAccessError(e, path, dataDir);
  }
}

/** An empty history must not be started next to an earlier one's images: they would be orphaned. */
function refuseOverImages(
  file: string,
  state: "missing" | "empty",
  dataDir: string,
  images: ExistingImages | undefined,
): void {
  const n = images?.count() ?? 0;
  if (n === 0) return;
  throw new StoreError(
    `${file} is ${state}, but ${images!.dir} holds ${n} image(s) of an earlier history, which a new database would orphan: ` +
      `restore ${file} from a backup, or ${moveAsideAdvice(dataDir)}`,
  );
}

function tablesOf(db: Database.Database): string[] {
  return db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .pluck()
    .all() as string[];
}

function columnsOf(db: Database.Database, table: string): string[] {
  return db.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid").pluck().all(table) as string[];
}

/** Tables and columns compared with those a schema creates (built in memory, so there is one source). */
function schemaMismatch(db: Database.Database, schema: string): string | undefined {
  const reference = new Database(":memory:");
  try {
    reference.exec(schema);
    const want = tablesOf(reference);
    const have = tablesOf(db);
    if (want.join() !== have.join()) return `its tables are ${have.join(", ") || "none"}; expected ${want.join(", ")}`;
    for (const table of want) {
      const wantCols = columnsOf(reference, table);
      const haveCols = columnsOf(db, table);
      if (wantCols.join() !== haveCols.join())
        return `table ${table} has columns ${haveCols.join(", ")}; expected ${wantCols.join(", ")}`;
    }
    return undefined;
  } finally {
    reference.close();
  }
}
