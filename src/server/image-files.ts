import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { open, readFile, rename, rm } from "node:fs/promises";
import { isAbsolute, join, relative } from "node:path";
import { ID_PATTERN } from "./api-types.js";

const TMP_MARK = ".partial-";

/**
 * The generated PNGs under `<data>/images/<id>.png`. Names come only from validated ids and every path is
 * checked to stay inside the folder, so no request can make the server read or write elsewhere.
 */
export class ImageFiles {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "images");
    mkdirSync(this.dir, { recursive: true });
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
   * never a truncated PNG under its final name.
   */
  async write(id: string, png: Uint8Array): Promise<void> {
    const target = this.pathOf(id);
    const tmp = `${target}${TMP_MARK}${process.pid}`;
    // Asynchronous throughout: a slow disk must not stall status requests on the event loop.
    const file = await open(tmp, "w");
    try {
      await file.writeFile(png);
      await file.sync();
    } catch (e) {
      await file.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await file.close();
    await rename(tmp, target);
  }

  read(id: string): Promise<Buffer> {
    return readFile(this.pathOf(id));
  }
}
