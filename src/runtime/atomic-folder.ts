import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InternalError } from "../errors.js";
import { withFileLock } from "./file-lock.js";
import { mayBeRunning, ownerTag, parseOwner } from "./process-owner.js";

/**
 * Folders that several processes may build at the same time and that others read while they do (compile cache
 * entries). The rules that keep every reader safe:
 * - a folder is built privately (`makeBuildFolder`) and appears at its place whole, by one rename;
 * - a valid folder at its place is never moved or changed: a builder that finds one discards its own copy;
 * - a broken one is replaced under a lock, by renaming it aside first (so no reader ever sees a mix of two)
 *   and deleting it afterwards;
 * - what a killed process leaves (build folders, folders renamed aside) is deleted later by `sweepAbandoned`,
 *   once its maker is known to be dead, or after a day when the maker ran on another machine.
 */

const BUILDING = ".tmp";
const RETIRED = ".old";
/** Only for folders made on another machine (or by an older version), whose maker cannot be checked. */
const ABANDONED_AFTER_MS = 24 * 3600_000;
/** Each round ends with a valid folder in place unless processes keep breaking it; this bounds a pathological case. */
const MAX_ROUNDS = 8;

/**
 * A new empty folder beside `target`, private to this call, to build into and then `installFolder`. The parent
 * must exist: one that has just been removed (an evicted cache entry) is not brought back empty.
 */
export function makeBuildFolder(target: string): string {
  const dir = join(dirname(target), `.${basename(target)}${ownerTag()}${BUILDING}`);
  mkdirSync(dir);
  return dir;
}

export type InstallOutcome = "installed" | "kept-existing";

/**
 * Puts the finished folder `built` at `target`. When a valid folder (as `isValid` judges) is already there, it is
 * kept and `built` is deleted; a broken one is replaced.
 */
export function installFolder(built: string, target: string, isValid: (dir: string) => boolean): InstallOutcome {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    // rename() fills a missing or empty target atomically and fails on a non-empty one, so this is safe unlocked.
    if (tryRename(built, target)) return "installed";
    if (isValid(target)) {
      remove(built);
      return "kept-existing";
    }
    let retired: string | undefined;
    const outcome = withFileLock(lockPath(target), (): InstallOutcome | "again" => {
      // Under the lock nobody else moves the target; only an empty (or missing) target can still be filled by an
      // unlocked rename, so those are handled first and whatever is left is a non-empty folder that stays as it is.
      if (isValid(target)) return "kept-existing";
      try {
        rmdirSync(target);
        return "again";
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT") return "again";
        if (code !== "ENOTEMPTY" && code !== "EEXIST" && code !== "ENOTDIR") throw e;
      }
      if (isValid(target)) return "kept-existing"; // filled between the check and rmdir
      retired = join(dirname(target), `.${basename(target)}${ownerTag()}${RETIRED}`);
      renameSync(target, retired);
      return tryRename(built, target) ? "installed" : "again";
    });
    if (retired) remove(retired);
    if (outcome === "kept-existing") remove(built);
    if (outcome !== "again") return outcome;
  }
  throw new InternalError(
    `could not put ${built} in place at ${target}: other processes kept replacing it; delete ${target} and try again`,
  );
}

/**
 * Removes the folder at `target` if `shouldRemove` still says so under the lock (for example: it is still the
 * entry that the runtime refused, and not a new one that another process has put there since).
 */
export function retireFolder(target: string, shouldRemove: (dir: string) => boolean): void {
  let retired: string | undefined;
  withFileLock(lockPath(target), () => {
    if (!shouldRemove(target)) return;
    retired = join(dirname(target), `.${basename(target)}${ownerTag()}${RETIRED}`);
    try {
      renameSync(target, retired);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      retired = undefined;
    }
  });
  if (retired) remove(retired);
}

/** Deletes the build and retired folders in `parent` whose makers are dead (or a day old, from another machine). */
export function sweepAbandoned(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(".")) continue;
    const suffix = name.endsWith(BUILDING) ? BUILDING : name.endsWith(RETIRED) ? RETIRED : undefined;
    if (!suffix) continue;
    const path = join(parent, name);
    const owner = parseOwner(name, suffix);
    // Without an owner in the name (a build folder of an older version, ".<key>.<pid>.<time>.tmp") age decides.
    if (owner ? !mayBeRunning(owner) || isOld(path) : isOld(path)) remove(path);
  }
}

function isOld(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > ABANDONED_AFTER_MS;
  } catch {
    return false;
  }
}

function lockPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.lock`);
}

function tryRename(from: string, to: string): boolean {
  try {
    renameSync(from, to);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR") return false;
    // Windows refuses to rename onto an existing folder with EPERM.
    if ((code === "EPERM" || code === "EACCES") && existsSync(to)) return false;
    throw e;
  }
}

/** Best effort: a folder that cannot be deleted now (another sweeper at it, a file held open on Windows) is left to a later sweep. */
function remove(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    // left for sweepAbandoned
  }
}
