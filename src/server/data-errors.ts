import { resolve } from "node:path";
import { DiffuseError } from "../errors.js";

/**
 * The data folder cannot be used as it is: its job database is damaged, not ours, from a newer diffuse,
 * unreadable, or empty next to the images of an earlier history. The server refuses to start rather than start
 * an empty history over it (which would orphan every image) or fail later with 500s.
 */
export class StoreError extends DiffuseError {}

/** The disk under the data folder is full. Nothing is lost: the server carries on by itself once there is room. */
export class StorageFullError extends DiffuseError {
  constructor(
    readonly dataDir: string,
    while_: string,
  ) {
    super(
      `no space left on the disk of the data folder ${dataDir} (${while_}): free space on that disk ` +
        "(or restart with --data on a larger one), then submit again; the server goes on by itself once there is room",
    );
  }
}

/** Error codes by which Node (ENOSPC, EDQUOT) and SQLite (SQLITE_FULL) report a full disk or quota. */
const FULL_CODES = new Set(["ENOSPC", "EDQUOT", "SQLITE_FULL"]);

export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && FULL_CODES.has(code);
}

/** The exact command that starts a new, empty history and keeps the old one (database and images together). */
export function moveAsideAdvice(dataDir: string): string {
  const dir = resolve(dataDir);
  return `move the data folder aside to start a new, empty history (its images stay with it): mv ${shellQuote(dir)} ${shellQuote(`${dir}.old`)}`;
}

/** A path as a POSIX shell reads it back unchanged. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A file-system error on a path of the data folder, as a StoreError that says what to do. */
export function fileAccessError(e: unknown, path: string, dataDir: string): DiffuseError {
  if (isDiskFull(e)) return new StorageFullError(dataDir, `opening ${path}`);
  const err = e as NodeJS.ErrnoException;
  const reason = err.code ? `${err.code}: ${err.message}` : String(e);
  return new StoreError(
    `cannot use ${path} (${reason}): the user running diffuse needs to read and write it; fix its owner or permissions, or pass another --data folder`,
  );
}
