import { DiffuseError } from "../errors.js";

/**
 * The job database cannot be used as it is: damaged, not ours, from a newer diffuse, or unreadable. The server
 * refuses to start on it rather than start an empty history over it (which would orphan every image).
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
