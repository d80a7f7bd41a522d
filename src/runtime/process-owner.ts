import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

/**
 * Who made a temporary file or folder, written into its name, so that another process can tell whether the
 * maker still runs (same machine, pid alive) before removing what it left behind.
 */
export interface Owner {
  host: string;
  pid: number;
}

/** This machine's name, reduced to characters that are safe in a file name and free of our separator "~". */
export function hostTag(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9-]/g, "-")
      .slice(0, 40) || "host"
  );
}

/** `~<host>~<pid>~<random>`: unique to this call, and says which process made it. */
export function ownerTag(): string {
  return `~${hostTag()}~${process.pid}~${randomBytes(6).toString("hex")}`;
}

/** The owner written by `ownerTag` at the end of `name` (before `suffix`), if there is one. */
export function parseOwner(name: string, suffix: string): Owner | undefined {
  if (!name.endsWith(suffix)) return undefined;
  const m = /~([A-Za-z0-9-]+)~(\d+)~[0-9a-f]+$/.exec(name.slice(0, name.length - suffix.length));
  return m ? { host: m[1]!, pid: Number(m[2]) } : undefined;
}

/**
 * Whether the owner may still be at work: true for another machine (its processes cannot be seen from here) and
 * for a live process here (EPERM: alive, another user's).
 */
export function mayBeRunning(owner: Owner): boolean {
  if (owner.host !== hostTag()) return true;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
