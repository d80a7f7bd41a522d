import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { CheckpointError } from "../errors.js";

/**
 * Checkpoint hashes. Files are several GB, so they are streamed through the hash in chunks, never loaded whole.
 */

/** Hex sha256 of a file's bytes. `onProgress` gets the bytes hashed so far. */
export async function sha256File(path: string, onProgress?: (bytesDone: number) => void): Promise<string> {
  const hash = createHash("sha256");
  let done = 0;
  let file: FileHandle | undefined;
  try {
    file = await open(path, "r");
    // 4 MiB chunks: large enough that the per-chunk overhead is negligible, small enough to stay out of the way. One
    // buffer for all of them: a read stream's fresh buffer per chunk cost page faults that were most of the time
    // (an SD1.5 UNet file of 1.7 GB: 4.1 s of CPU time, 1.65 s with the buffer reused).
    const chunk = Buffer.allocUnsafeSlow(4 << 20);
    for (;;) {
      const { bytesRead } = await file.read(chunk, 0, chunk.length, done);
      if (bytesRead === 0) break;
      hash.update(chunk.subarray(0, bytesRead));
      done += bytesRead;
      onProgress?.(done);
    }
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot read for hashing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  } finally {
    await file?.close();
  }
  return hash.digest("hex");
}

/**
 * AUTOMATIC1111's short model hash: the first 10 hex digits of the whole file's sha256 (what its UI shows in
 * brackets and writes as "Model hash" in PNG parameters).
 */
export function shortHash(sha256Hex: string): string {
  if (!/^[0-9a-f]{64}$/i.test(sha256Hex))
    throw new CheckpointError(`"${sha256Hex}" is not a sha256 in hex (64 hex digits)`);
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

/**
 * AUTOMATIC1111's old short hash, which its ControlNet extension still shows after each model's name
 * ("control_v11p_sd15_canny [d14c016b]"): the first 8 hex digits of the sha256 of the 64 KiB at offset 1 MiB (fewer
 * bytes, or none, in a smaller file). Cheap, and collision-prone, which is why it only labels.
 */
export function legacyShortHash(path: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const buf = Buffer.alloc(0x10000);
    const n = readSync(fd, buf, 0, buf.length, 0x100000);
    return createHash("sha256").update(buf.subarray(0, n)).digest("hex").slice(0, 8);
  } catch (e) {
    throw new CheckpointError(
      `${path}: cannot read for hashing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
