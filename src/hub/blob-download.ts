import { createHash, type Hash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  createWriteStream,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statfsSync,
} from "node:fs";
import { dirname } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { downloadFile, fileDownloadInfo } from "@huggingface/hub";
import { HubError } from "../errors.js";
import type { RepoCache } from "./hub-cache.js";
import { hubFailure } from "./hub-failure.js";
import type { HubFetch } from "./hub-fetch.js";
import type { StoreSettings } from "./store-settings.js";

/** One file's download, as it goes. */
export interface FileProgress {
  /** The file's path in the repository. */
  readonly file: string;
  /** Bytes of the file on disk so far, those of an earlier interrupted download included. */
  readonly bytes: number;
  readonly total: number;
  /** Bytes received by this download (what a speed is measured on). */
  readonly received: number;
  /** Where this download started: above 0 when it resumed an interrupted one. */
  readonly resumedFrom: number;
}

export interface BlobRequest {
  readonly cache: RepoCache;
  readonly commit: string;
  readonly file: string;
  readonly hub: HubFetch;
  readonly settings: StoreSettings;
  readonly gated?: boolean;
  readonly onProgress?: (p: FileProgress) => void;
  readonly signal?: AbortSignal;
}

export interface FetchedBlob {
  readonly etag: string;
  readonly size: number;
  /** Bytes that came over the network (0 when the blob was already in the cache). */
  readonly received: number;
}

/**
 * Puts one file of a repository into the cache's blobs, whole and checked, and returns its etag (the blob's name).
 * What the client's downloadFileToCacheDir lacks, and this adds around the client's fileDownloadInfo and
 * downloadFile (which speak the protocol: resolve, ranges, Xet):
 *  - progress, per chunk;
 *  - resume: the bytes arrive in `blobs/<etag>.incomplete` (huggingface_hub's name, so either tool resumes the
 *    other's download); a later run sends a Range request for the rest;
 *  - the checksum: an LFS file's etag is the sha256 of its bytes, a small file's the git blob sha1; bytes that do
 *    not hash to it are deleted, never renamed into place;
 *  - free space checked before, a full disk named if it fills during the download.
 * Only a whole, checked file is renamed to `blobs/<etag>`; the snapshot links to it are made by the caller.
 */
export async function fetchBlob(req: BlobRequest): Promise<FetchedBlob> {
  const { cache, commit, file, hub, settings } = req;
  const ctx = { repo: cache.repo, revision: commit, file, gated: req.gated };
  const common = {
    repo: { type: "model" as const, name: cache.repo },
    path: file,
    revision: commit,
    hubUrl: settings.endpoint,
    accessToken: settings.token,
    fetch: hub.fetch,
  };
  let info;
  try {
    info = await fileDownloadInfo(common);
  } catch (e) {
    throw hubFailure(e, ctx, hub, settings);
  }
  if (!info) throw new HubError(`${cache.repo}@${commit} has no file ${file} (404)`);
  const etag = normalizeEtag(info.etag);
  if (!/^[0-9A-Za-z_-]{8,128}$/.test(etag))
    throw new HubError(
      `the Hub gave ${file} of ${cache.repo} an etag diffuse cannot use as a file name (${info.etag}); check HF_ENDPOINT`,
    );
  const size = info.size;
  const blob = cache.blob(etag);
  if (sizeOf(blob) === size) return { etag, size, received: 0 };
  mkdirSync(dirname(blob), { recursive: true });
  const partial = `${blob}.incomplete`;
  let offset = sizeOf(partial) ?? 0;
  if (offset > size) {
    rmSync(partial, { force: true });
    offset = 0;
  }
  checkFreeSpace(dirname(blob), size - offset, file);
  const digest = contentDigest(etag, size);
  if (digest && offset > 0) await pipeline(createReadStream(partial, { end: offset - 1 }), hashInto(digest.hash));
  let received = 0;
  if (offset < size) {
    let whole: Blob | null;
    try {
      whole = await downloadFile({ ...common, downloadInfo: info });
    } catch (e) {
      throw hubFailure(e, ctx, hub, settings);
    }
    if (!whole) throw new HubError(`${cache.repo}@${commit} has no file ${file} (404)`);
    const part = offset > 0 ? whole.slice(offset) : whole;
    req.onProgress?.({ file, bytes: offset, total: size, received: 0, resumedFrom: offset });
    try {
      await appendStream(part.stream(), partial, (chunk) => {
        digest?.hash.update(chunk);
        received += chunk.length;
        req.onProgress?.({ file, bytes: offset + received, total: size, received, resumedFrom: offset });
      });
    } catch (e) {
      // A request the server refused mid-way (an expired link, a lost grant) is the client's error; otherwise the connection broke.
      throw hub.lastFailure
        ? hubFailure(e, ctx, hub, settings)
        : streamFailure(e, { file, repo: cache.repo, partial, done: offset + received, size });
    }
  }
  const got = sizeOf(partial) ?? 0;
  if (got < size) throw interrupted(file, cache.repo, got, size, "the connection ended early");
  if (got > size) {
    rmSync(partial, { force: true });
    throw new HubError(
      `${file} of ${cache.repo}: received ${got} bytes where the Hub announced ${size}; the partial file was deleted, run the pull again`,
    );
  }
  if (digest) {
    const actual = digest.hash.digest("hex");
    if (actual !== digest.expected) {
      rmSync(partial, { force: true });
      throw new HubError(
        `${file} of ${cache.repo}: the bytes received have ${digest.name} ${actual}, but the Hub's ${digest.source} says ${digest.expected}; ` +
          "the file was discarded. Run the pull again; if it happens again, the server at HF_ENDPOINT (or a proxy) serves a damaged file",
      );
    }
  }
  syncFile(partial);
  renameSync(partial, blob);
  return { etag, size, received };
}

/** `"abc"`, `W/"abc"` -> abc */
function normalizeEtag(etag: string): string {
  return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
}

/** The size of a regular file, or undefined when there is none (a link or folder in its place counts as none). */
function sizeOf(path: string): number | undefined {
  try {
    const st = lstatSync(path);
    if (st.isFile()) return st.size;
    rmSync(path, { recursive: true, force: true });
    return undefined;
  } catch {
    return undefined;
  }
}

interface Digest {
  readonly hash: Hash;
  readonly expected: string;
  readonly name: string;
  readonly source: string;
}

/**
 * What the etag says the bytes hash to: an LFS file's etag is the sha256 of its content (the LFS object id that
 * X-Linked-Etag carries), a file stored in git itself has its git blob id, the sha1 of "blob <size>\0" and the bytes.
 */
function contentDigest(etag: string, size: number): Digest | undefined {
  if (/^[0-9a-f]{64}$/.test(etag))
    return { hash: createHash("sha256"), expected: etag, name: "sha256", source: "LFS metadata (X-Linked-Etag)" };
  if (/^[0-9a-f]{40}$/.test(etag)) {
    const hash = createHash("sha1").update(`blob ${size}\0`);
    return { hash, expected: etag, name: "git blob sha1", source: "ETag" };
  }
  return undefined;
}

/**
 * Appends a download to the partial file, each chunk written before the next is read. When the connection breaks,
 * every byte received is on disk before the error goes up, so the next run resumes from the last byte that came.
 */
async function appendStream(
  stream: ReadableStream<Uint8Array>,
  partial: string,
  onChunk: (chunk: Uint8Array) => void,
): Promise<void> {
  const out = createWriteStream(partial, { flags: "a" });
  const reader = stream.getReader();
  let failure: unknown;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await new Promise<void>((resolve, reject) => out.write(value, (err) => (err ? reject(err) : resolve())));
      onChunk(value);
    }
  } catch (e) {
    failure = e;
    reader.cancel().catch(() => undefined);
  }
  await new Promise<void>((resolve) => {
    if (out.destroyed) return resolve();
    out.once("error", () => resolve());
    out.end(() => resolve());
  });
  if (failure !== undefined) throw failure;
}

function hashInto(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done();
    },
  });
}

function checkFreeSpace(dir: string, needed: number, file: string): void {
  let free: number;
  try {
    const fs = statfsSync(dir);
    free = fs.bavail * fs.bsize;
  } catch {
    return; // no statfs here: the write itself reports a full disk
  }
  if (free < needed) throw diskFull(dir, needed, free, file);
}

function diskFull(dir: string, needed: number | undefined, free: number | undefined, file: string): HubError {
  const amounts = needed !== undefined && free !== undefined ? ` (${gib(needed)} needed, ${gib(free)} free)` : "";
  return new HubError(
    `not enough disk space for ${file} in ${dir}${amounts}: free some space, or set HF_HUB_CACHE (or HF_HOME) to a folder on a larger disk; ` +
      "a partial download is kept and resumes on the next pull",
  );
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function interrupted(file: string, repo: string, done: number, size: number, why: string): HubError {
  return new HubError(
    `the download of ${file} of ${repo} stopped after ${done} of ${size} bytes (${why}); run the same pull again to resume from there`,
  );
}

/** A failed transfer: cancelled (passed on as is), a full disk, an unwritable cache, or a connection that broke. */
function streamFailure(
  e: unknown,
  at: { file: string; repo: string; partial: string; done: number; size: number },
): Error {
  if ((e as Error)?.name === "AbortError") return e as Error;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === "ENOSPC" || code === "EDQUOT")
    return diskFull(dirname(at.partial), at.size - at.done, undefined, at.file);
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new HubError(
      `cannot write ${at.partial} (${code}): make the Hugging Face cache writable, or set HF_HUB_CACHE to a folder you can write`,
    );
  }
  const why =
    typeof e === "string"
      ? e
      : ((e as { cause?: { message?: string } })?.cause?.message ?? (e as Error)?.message ?? String(e));
  return interrupted(at.file, at.repo, at.done, at.size, why);
}

function syncFile(path: string): void {
  const fd = openSync(path, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
