import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/**
 * Digests that let a cache check its files at every load without reading gigabytes: a whole-file sha256 for the
 * small graph files, a sampled one for the large weight files.
 */

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

const BLOCK = 64 * 1024;
const BLOCKS = 64;

/**
 * sha256 of 64 evenly spaced 64 KiB blocks (the first and the last included) and of the size; the whole file when
 * it is smaller than that. 4 MiB read whatever the size (a few ms for the 3.4 GB SD1.5 UNet), so it catches what
 * happens to a whole file or a large part of it: truncation, another file of the same size in its place (the
 * weights of another checkpoint of the same architecture), a file overwritten or zero-filled from some offset on,
 * a copy cut short. It misses a change confined to a few bytes between two samples (one sample per 1/63 of the
 * file: a flipped bit, one bad sector); that would take reading the whole file at every load.
 */
export function sampledDigest(path: string): string {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const hash = createHash("sha256");
    const block = Buffer.alloc(BLOCK);
    if (size <= BLOCK * BLOCKS) {
      const all = Buffer.alloc(size);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, all, done, size - done, done);
        if (n === 0) break;
        done += n;
      }
      hash.update(all.subarray(0, done));
    } else {
      for (let i = 0; i < BLOCKS; i++) {
        const pos = Math.floor(((size - BLOCK) * i) / (BLOCKS - 1));
        const n = readSync(fd, block, 0, BLOCK, pos);
        hash.update(block.subarray(0, n));
      }
    }
    hash.update(String(size));
    return hash.digest("hex");
  } finally {
    closeSync(fd);
  }
}
