import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * Remembers file hashes by (absolute path, size, mtime), as AUTOMATIC1111's cache.json does, so a multi-GB
 * checkpoint is hashed once rather than at every start. A changed file has another size or mtime and is
 * hashed again; a broken memo file is ignored.
 */
export class HashMemo {
  constructor(readonly file: string) {}

  async hash(path: string, compute: (path: string) => Promise<string>): Promise<string> {
    const abs = resolve(path);
    const st = statSync(abs);
    const stamp = `${st.size}:${st.mtimeMs}`;
    const memo = this.read();
    const hit = memo[abs];
    if (hit && hit.stamp === stamp) return hit.sha256;
    const sha256 = await compute(abs);
    const fresh = this.read();
    fresh[abs] = { stamp, sha256 };
    this.write(fresh);
    return sha256;
  }

  private read(): Record<string, { stamp: string; sha256: string }> {
    try {
      const json = JSON.parse(readFileSync(this.file, "utf8"));
      return json && typeof json === "object" && !Array.isArray(json) ? json : {};
    } catch {
      return {};
    }
  }

  private write(memo: Record<string, { stamp: string; sha256: string }>): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(memo, null, 1));
    renameSync(tmp, this.file);
  }
}
