import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { getRepoFolderName, REGEX_COMMIT_HASH } from "@huggingface/hub";

/**
 * The Hugging Face cache layout, shared with huggingface_hub and diffusers:
 *   models--OWNER--NAME/blobs/<etag>                 each file's bytes, named by the Hub's etag (sha256 for LFS files)
 *   models--OWNER--NAME/snapshots/<commit>/<path>    relative links to the blobs, the folder a model is read from
 *   models--OWNER--NAME/refs/<revision>              the commit a branch or tag pointed to when last downloaded
 * The client names the folders (getRepoFolderName); placing files in them is done here, since its own
 * downloadFileToCacheDir has no progress, no resume and no checksum.
 */
export class RepoCache {
  readonly folder: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    this.folder = join(cacheDir, getRepoFolderName({ type: "model", name: repo }));
  }

  blob(etag: string): string {
    return join(this.folder, "blobs", etag);
  }

  snapshot(commit: string): string {
    return join(this.folder, "snapshots", commit);
  }

  /** The commit a revision names in the cache: the revision itself when it is a commit hash, else refs/<revision>. */
  commitOf(revision: string): string | undefined {
    if (REGEX_COMMIT_HASH.test(revision)) return existsSync(this.snapshot(revision)) ? revision : undefined;
    try {
      const commit = readFileSync(join(this.folder, "refs", ...revision.split("/")), "utf8").trim();
      return REGEX_COMMIT_HASH.test(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  /** The snapshot folder of a revision, if it was downloaded. */
  snapshotOf(revision: string): string | undefined {
    const commit = this.commitOf(revision);
    return commit && existsSync(this.snapshot(commit)) ? this.snapshot(commit) : undefined;
  }

  writeRef(revision: string, commit: string): void {
    if (revision === commit) return;
    const file = join(this.folder, "refs", ...revision.split("/"));
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, commit);
    renameSync(tmp, file);
  }

  /** Whether `path` of snapshot `commit` is in place (its link leads to a whole blob). */
  has(commit: string, path: string): boolean {
    try {
      return statSync(join(this.snapshot(commit), path)).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Puts `path` of snapshot `commit` in place as a relative link to its blob, as huggingface_hub does (the cache
   * can be moved as a whole). Where links cannot be made (Windows without developer mode), a copy.
   */
  link(commit: string, path: string, etag: string): void {
    const pointer = join(this.snapshot(commit), path);
    const blob = this.blob(etag);
    mkdirSync(dirname(pointer), { recursive: true });
    rmSync(pointer, { force: true });
    try {
      symlinkSync(relative(dirname(pointer), blob), pointer);
    } catch {
      copyFileSync(blob, pointer);
    }
  }

  /** Repository ids of every model repository in a cache folder. */
  static repos(cacheDir: string): string[] {
    let names: string[];
    try {
      names = readdirSync(cacheDir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.startsWith("models--") && n.split("--").length >= 3)
      .map((n) => n.slice("models--".length).split("--").join("/"));
  }
}
