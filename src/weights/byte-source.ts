import { closeSync, readSync } from "node:fs";
import { CheckpointError } from "../errors.js";

/** Where a weights file's bytes come from: a file read on demand, or bytes already in memory. */
export interface ByteSource {
  read(buf: Uint8Array, position: number): void;
  close(): void;
}

export function fileSource(path: string, fd: number | undefined): ByteSource {
  return {
    read(buf, position) {
      if (fd === undefined) throw new CheckpointError(`${path}: file already closed`);
      readFully(fd, buf, position);
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

export function memorySource(bytes: Uint8Array, name: string): ByteSource {
  return {
    read(buf, position) {
      if (position + buf.length > bytes.length)
        throw new CheckpointError(
          `${name}: unexpected end of data while reading ${buf.length} bytes at offset ${position}`,
        );
      buf.set(bytes.subarray(position, position + buf.length));
    },
    close() {},
  };
}

export function readFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0)
      throw new CheckpointError(`unexpected end of file while reading ${buf.length} bytes at offset ${position}`);
    done += n;
  }
}
