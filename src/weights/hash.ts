import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { CheckpointError } from "../errors.js";

/**
 * Checkpoint hashes. Files are several GB, so they are streamed through the hash in chunks, never loaded whole.
 */

/** Hex sha256 of a file's bytes. `onProgress` gets the bytes hashed so far. */
export async function sha256File(path: string, onProgress?: (bytesDone: number) => void): Promise<string> {
  const hash = createHash("sha256");
  let done = 0;
  try {
    // 4 MiB chunks: large enough that the per-chunk overhead is negligible, small enough to stay out of the way.
    for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) {
      hash.update(chunk as Buffer);
      done += (chunk as Buffer).length;
      onProgress?.(done);
    }
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read for hashing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`);
  }
  return hash.digest("hex");
}

/**
 * AUTOMATIC1111's short model hash: the first 10 hex digits of the whole file's sha256 (what its UI shows in
 * brackets and writes as "Model hash" in PNG parameters).
 */
export function shortHash(sha256Hex: string): string {
  if (!/^[0-9a-f]{64}$/i.test(sha256Hex)) throw new CheckpointError(`"${sha256Hex}" is not a sha256 in hex (64 hex digits)`);
  return sha256Hex.slice(0, 10).toLowerCase();
}

export interface FileHashes {
  sha256: string;
  /** AUTOMATIC1111's short hash (10 hex digits). */
  shortHash: string;
}

/** Both hashes of a file in one pass. */
export async function fileHashes(path: string, onProgress?: (bytesDone: number) => void): Promise<FileHashes> {
  const sha256 = await sha256File(path, onProgress);
  return { sha256, shortHash: shortHash(sha256) };
}
