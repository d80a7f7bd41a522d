import { basename, dirname } from "node:path";

/**
 * The repository whose snapshot folder `path` is, when it is one: `.../models--OWNER--NAME/snapshots/<commit>`
 * -> OWNER/NAME. A model read from the Hugging Face cache is named by its repository, not by the commit hash
 * that names its folder. Kept apart from hub-cache.ts so that what names a model need not load the Hub client.
 */
export function snapshotRepo(path: string): string | undefined {
  const commit = basename(path);
  const snapshots = dirname(path);
  if (!/^[0-9a-f]{40}$/.test(commit) || basename(snapshots) !== "snapshots") return undefined;
  const folder = basename(dirname(snapshots));
  const m = /^models--(.+?)--(.+)$/.exec(folder);
  return m ? `${m[1]}/${m[2]!.split("--").join("/")}` : undefined;
}
