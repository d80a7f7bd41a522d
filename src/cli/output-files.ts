import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { InputError } from "../index.js";

/** The longest file name (one path component) Linux file systems and macOS's APFS accept, in bytes. */
const NAME_MAX = 255;

/**
 * Where the bytes for a requested output path go, or an InputError saying why not. The rule: diffuse only ever
 * replaces a regular file, never a device, FIFO, socket or directory (renaming over /dev/full as root replaced
 * the device node). A symbolic link is followed, as a shell's `>` and most tools do when writing, so the file
 * it points to is replaced and the link stays; renaming over the link itself would turn it into a plain file.
 * A dangling link is refused rather than followed, so a link planted in a shared folder cannot make diffuse
 * create a file somewhere else.
 */
export function resolveOutputTarget(requested: string): string {
  const path = resolve(requested);
  const name = basename(path);
  const bytes = Buffer.byteLength(name);
  if (bytes > NAME_MAX) {
    throw new InputError(
      `the output file name ${JSON.stringify(name.slice(0, 40) + "...")} is ${bytes} bytes long; file systems allow ${NAME_MAX}: shorten it`,
    );
  }
  const own = stats(path, lstatSync, requested);
  if (own === undefined) {
    checkFolder(dirname(path), requested);
    return path;
  }
  if (!own.isSymbolicLink()) {
    checkRegular(own, requested);
    return path;
  }
  let target: string;
  try {
    target = realpathSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const link = safeReadlink(path);
    if (code === "ENOENT")
      throw new InputError(
        `${requested} is a symbolic link to ${link}, which does not exist: point the link at an existing file, or remove it`,
      );
    throw new InputError(`${requested} is a symbolic link that cannot be followed (${code}): fix or remove it`);
  }
  checkRegular(stats(target, statSync, requested)!, requested, target);
  return target;
}

/** The files of one run, written under temporary names beside their targets and not yet visible. */
export interface StagedFiles {
  /**
   * Renames every staged file over its target, after checking every target again (it may have changed while
   * the images were made); synchronous, so nothing runs in between. On any failure nothing stays: the
   * temporary files are removed, so are the files already renamed, and the error names the cause.
   * Returns the paths written, as requested.
   */
  commit(): string[];
  /** Removes the temporary files; never throws. */
  discard(): void;
}

/**
 * Writes each file under a short temporary name in its target's folder (`.diffuse-<random>.tmp`: a name that
 * fits whatever the target's length, on the same file system so the rename is atomic), flushed to disk, so a
 * target is later either replaced whole or left alone. A failure removes what was staged and names the cause;
 * a failed cleanup never hides it.
 */
export function stageFiles(files: readonly { readonly path: string; readonly bytes: Uint8Array }[]): StagedFiles {
  const staged: { requested: string; target: string; temp: string }[] = [];
  const discard = () => {
    for (const s of staged.splice(0)) removeQuietly(s.temp);
  };
  try {
    for (const f of files) {
      const target = resolveOutputTarget(f.path);
      const temp = tempPathIn(dirname(target));
      staged.push({ requested: f.path, target, temp });
      writeDurably(temp, f.bytes, f.path);
    }
  } catch (e) {
    discard();
    throw e;
  }
  return {
    discard,
    commit: () => {
      const renamed: string[] = [];
      try {
        for (const s of staged) {
          if (resolveOutputTarget(s.requested) !== s.target) {
            throw new InputError(
              `${s.requested} changed while the images were made (it now leads elsewhere); nothing was written: run again`,
            );
          }
        }
        for (const s of staged) {
          try {
            renameSync(s.temp, s.target);
          } catch (e) {
            throw new InputError(
              `cannot write ${s.requested} (${describeErrno(e)}); check that ${dirname(s.target)} is writable`,
            );
          }
          renamed.push(s.target);
        }
      } catch (e) {
        for (const path of renamed) removeQuietly(path);
        discard();
        throw e;
      }
      const written = staged.map((s) => resolve(s.requested));
      staged.length = 0;
      return written;
    },
  };
}

/**
 * Checks before any compute that every output can be written: the target (see resolveOutputTarget), and each
 * folder by creating and removing a temporary file in it, which is the only test that also holds for root
 * (who passes permission checks) and read-only or full file systems.
 */
export function checkOutputsWritable(paths: readonly string[]): void {
  const folders = new Map<string, string>();
  for (const p of paths) folders.set(dirname(resolveOutputTarget(p)), p);
  for (const [folder, requested] of folders) {
    const temp = tempPathIn(folder);
    try {
      closeSync(openSync(temp, "wx"));
    } catch (e) {
      throw new InputError(
        `cannot write ${requested}: creating a file in ${folder} fails (${describeErrno(e)}); choose a folder you can write to`,
      );
    }
    removeQuietly(temp);
  }
}

function tempPathIn(folder: string): string {
  return resolve(folder, `.diffuse-${randomBytes(6).toString("hex")}.tmp`);
}

function writeDurably(path: string, bytes: Uint8Array, requested: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, "wx");
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
    // On disk before the rename makes it visible: after a crash the name holds the old file or the whole new one.
    fsyncSync(fd);
  } catch (e) {
    throw new InputError(
      `cannot write ${requested} (${describeErrno(e)}); check the space and permissions of ${dirname(path)}`,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or not removable: the error that led here is the one to report.
  }
}

function stats(path: string, stat: (p: string) => Stats, requested: string): Stats | undefined {
  try {
    return stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ENOTDIR") throw new InputError(`${requested}: a folder in this path is a file; check the path`);
    throw new InputError(`cannot check ${requested} (${describeErrno(e)}); check the path and its permissions`);
  }
}

function checkFolder(folder: string, requested: string): void {
  const s = stats(folder, statSync, requested);
  if (s === undefined)
    throw new InputError(`cannot write ${requested}: the folder ${folder} does not exist; create it first`);
  if (!s.isDirectory()) throw new InputError(`cannot write ${requested}: ${folder} is not a folder`);
}

function checkRegular(s: Stats, requested: string, via?: string): void {
  if (s.isFile()) return;
  const what = s.isDirectory() ? "a directory" : `not a regular file but ${kindOf(s)}`;
  const where = via ? `${requested} (a symbolic link to ${via}) is ${what}` : `${requested} is ${what}`;
  const fix = s.isDirectory()
    ? `give a file name inside it, e.g. ${resolve(requested, "out.png")}`
    : "diffuse only replaces regular files; choose another name";
  throw new InputError(`${where}: ${fix}`);
}

function kindOf(s: Stats): string {
  if (s.isFIFO()) return "a FIFO";
  if (s.isCharacterDevice()) return "a character device";
  if (s.isBlockDevice()) return "a block device";
  if (s.isSocket()) return "a socket";
  return "a special file";
}

function safeReadlink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "(unreadable)";
  }
}

function describeErrno(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    ENOSPC: "no space left on the device",
    EDQUOT: "disk quota exceeded",
    ENAMETOOLONG: "name too long",
    EISDIR: "is a directory",
  };
  return err?.code ? `${err.code}${words[err.code] ? `: ${words[err.code]}` : ""}` : String(err?.message ?? e);
}
