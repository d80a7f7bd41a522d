import { linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { InternalError } from "../errors.js";
import { mayBeRunning, ownerTag, parseOwner } from "./process-owner.js";

/** A lock is held for milliseconds (a check and two renames); one this old was left by a process that died. */
const ABANDONED_AFTER_MS = 5 * 60_000;
/** A lock file created but not yet written holds no owner; its maker gets this long to write it. */
const UNWRITTEN_GRACE_MS = 5_000;
const GIVE_UP_AFTER_MS = 10 * 60_000;

/**
 * Runs `fn` while holding the lock file `path` (created exclusively, holding its owner's tag), waiting while
 * another process holds it. A lock left by a dead process (same machine) or older than 5 minutes is broken.
 * Synchronous, like the cache code that uses it; the wait sleeps without spinning.
 */
export function withFileLock<T>(path: string, fn: () => T): T {
  const tag = ownerTag();
  const started = Date.now();
  for (let pause = 1; ; pause = Math.min(2 * pause, 50)) {
    try {
      writeFileSync(path, tag, { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    if (breakIfAbandoned(path)) continue;
    if (Date.now() - started > GIVE_UP_AFTER_MS) {
      throw new InternalError(
        `${path} has been locked by another process for over ${GIVE_UP_AFTER_MS / 60_000} minutes; if no diffuse process is running, delete that file`,
      );
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause);
  }
  try {
    return fn();
  } finally {
    if (read(path) === tag) rmSync(path, { force: true });
  }
}

/** Removes the lock at `path` when its holder is gone; true when the caller should try to take it again. */
function breakIfAbandoned(path: string): boolean {
  const content = read(path);
  let age: number;
  try {
    age = Date.now() - statSync(path).mtimeMs;
  } catch {
    return true; // released meanwhile
  }
  if (content === undefined) return false; // there but unreadable: wait, and give up in the end with a message
  const owner = parseOwner(content, "");
  const abandoned = owner ? !mayBeRunning(owner) || age > ABANDONED_AFTER_MS : age > UNWRITTEN_GRACE_MS;
  if (!abandoned) return false;
  // Moved aside rather than deleted: if the abandoned lock was already broken by another waiter that took the
  // lock since, what was moved is that waiter's lock, and it is given back.
  const aside = `${path}${ownerTag()}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return true;
  }
  if (read(aside) !== content) {
    try {
      linkSync(aside, path);
    } catch {
      // The lock was taken again in the meantime; that holder has it.
    }
  }
  rmSync(aside, { force: true });
  return true;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
