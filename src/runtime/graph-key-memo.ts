import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Remembers the compile-cache key of a network by a digest of everything its graph is built from (the model's files,
 * its config, the code, the options), so that a warm load finds its entry without building the graph only to digest
 * it (a few hundred milliseconds per model for the tiny ones, seconds for SD1.5). The key itself keeps its meaning:
 * it is computed from the built graph whenever the memo has no answer, and any change to what the graph is built
 * from gives another memo id. One small file per id in `dir`, written whole under a temporary name and renamed, so
 * that concurrent processes never read half of one; an unreadable file is no answer.
 */
export class GraphKeyMemo {
  constructor(readonly dir: string) {}

  /** The id of a build's inputs: any change to any of them gives another id. */
  static id(inputs: readonly string[]): string {
    const hash = createHash("sha256");
    for (const input of inputs) hash.update(`${input.length}:${input}\0`);
    return hash.digest("hex").slice(0, 40);
  }

  get(id: string): string | undefined {
    try {
      const key = readFileSync(join(this.dir, id), "utf8");
      return key.length > 0 ? key : undefined;
    } catch {
      return undefined;
    }
  }

  set(id: string, key: string): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      const tmp = join(this.dir, `.${id}.${randomBytes(4).toString("hex")}.tmp`);
      writeFileSync(tmp, key);
      renameSync(tmp, join(this.dir, id));
    } catch {
      // A memo that cannot be written costs the next load a graph build, nothing else.
    }
  }
}
