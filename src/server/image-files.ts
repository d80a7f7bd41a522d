import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { open, readFile, rename, rm } from "node:fs/promises";
import { isAbsolute, join, relative } from "node:path";
import { ID_PATTERN } from "./api-types.js";
import { fileAccessError, isDiskFull, StorageFullError } from "./data-errors.js";

const TMP_MARK = ".partial-";

/** Writes a whole file and flushes it to disk. */
export type FileWriter = (path: string, bytes: Uint8Array) => Promise<void>;

/** Asynchronous throughout: a slow disk must not stall status requests on the event loop. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const file = await open(path, "w");
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * The generated PNGs under `<data>/images/<id>.png`. Names come only from validated ids and every path is
 * checked to stay inside the folder, so no request can make the server read or write elsewhere.
 */
export class ImageFiles {
  readonly dir: string;
  private readonly dataDir: string;

  /** `writeFile` puts bytes on disk durably; tests pass one that fails as a full disk does. */
  constructor(
    dataDir: string,
    private readonly writeFile: FileWriter = writeDurably,
  ) {
    this.dataDir = dataDir;
    this.dir = join(dataDir, "images");
    try {
      mkdirSync(this.dir, { recursive: true });
    } catch (e) {
      throw fileAccessError(e, this.dir, dataDir);
    }
  }

  /** How many images the folder holds (an empty database beside them would orphan them). */
  count(): number {
    return readdirSync(this.dir).filter((name) => name.endsWith(".png") && !name.includes(TMP_MARK)).length;
  }

  /** Leftovers of writes cut short by a crash: never referenced by the database, safe to delete. */
  removePartials(): number {
    let n = 0;
    for (const name of readdirSync(this.dir)) {
      if (name.includes(TMP_MARK)) {
        rmSync(join(this.dir, name), { force: true });
        n++;
      }
    }
    return n;
  }

  pathOf(id: string): string {
    if (!ID_PATTERN.test(id)) throw new Error(`not an image id: ${JSON.stringify(id)}`);
    const path = join(this.dir, `${id}.png`);
    const rel = relative(this.dir, path);
    if (rel.startsWith("..") || isAbsolute(rel)) throw new Error(`image path escapes ${this.dir}: ${path}`);
    return path;
  }

  /**
   * Written to a temporary name, flushed, then renamed: after a crash the file is either complete or absent,
   * never a truncated PNG under its final name. A failed write leaves nothing behind; a full disk is reported
   * as such (StorageFullError).
   */
  async write(id: string, png: Uint8Array): Promise<void> {
    const target = this.pathOf(id);
    const tmp = `${target}${TMP_MARK}${process.pid}`;
    try {
      await this.writeFile(tmp, png);
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      if (isDiskFull(e)) throw new StorageFullError(this.dataDir, `writing image ${id}.png`);
      throw e;
    }
  }

  /** Removes an image that will not be recorded (its job failed after it was written); absent is fine. */
  async remove(id: string): Promise<void> {
    await rm(this.pathOf(id), { force: true });
  }

  read(id: string): Promise<Buffer> {
    return readFile(this.pathOf(id));
  }
}
