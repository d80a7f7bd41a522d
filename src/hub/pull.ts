import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { modelInfo, REGEX_COMMIT_HASH } from "@huggingface/hub";
import { HubError, LicenseNotAcceptedError } from "../errors.js";
import { fetchBlob, type FileProgress } from "./blob-download.js";
import { componentsOf, selectFiles, type SelectionRequest } from "./file-selection.js";
import { RepoCache } from "./hub-cache.js";
import { hubFailure } from "./hub-failure.js";
import { HubFetch, HubUnreachableError } from "./hub-fetch.js";
import { LicenseAcceptances } from "./license-acceptance.js";
import { describeLicense, type LicenseFields, type LicenseNotice } from "./licenses.js";
import { parseModelRef, type ModelRef } from "./model-ref.js";
import { PullRecords } from "./pull-records.js";
import { licenseFromModelCard, licenseFromModelInfo } from "./repo-license.js";
import { storeSettings, type StoreOptions, type StoreSettings } from "./store-settings.js";

export type { FileProgress } from "./blob-download.js";

export interface PullOptions extends StoreOptions {
  /** Accept the model's licence without asking (`--accept-license`); the acceptance is recorded with the date. */
  acceptLicense?: boolean;
  /**
   * Shows a licence not yet accepted and says whether the user accepts it (the CLI asks at a terminal). Without it
   * and without `acceptLicense`, a licence not accepted before stops the pull with LicenseNotAcceptedError.
   */
  confirmLicense?: (license: LicenseNotice, what: string) => Promise<boolean>;
  /** Each file's progress, per chunk received. */
  onProgress?: (p: FileProgress) => void;
  /** Lines worth telling a user (a file already cached, a resumed download, working offline). */
  onStatus?: (message: string) => void;
  /** Stops the download; the partial file stays in the cache and the next pull resumes it. */
  signal?: AbortSignal;
}

export interface PullResult {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  /** The snapshot folder in the Hugging Face cache. */
  readonly snapshot: string;
  /** The model itself: the snapshot, a folder in it (a tokenizer) or one file of it. */
  readonly path: string;
  /** The repository's files the model consists of. */
  readonly files: readonly string[];
  readonly license: LicenseNotice | undefined;
  /** Bytes that came over the network; 0 when everything was cached. */
  readonly received: number;
  /** Files downloaded by this pull (the others were in the cache already). */
  readonly downloaded: readonly string[];
}

/**
 * Downloads a model (`NAME` from the catalogue or `OWNER/REPO[@REVISION][:FILE]`) into the Hugging Face cache, after
 * its licence is accepted, and returns where it is. Files already in the cache are not fetched again; offline
 * (HF_HUB_OFFLINE) or with the Hub out of reach, what the cache holds is returned, or an error says what is missing.
 * The Hub client speaks the protocol (model information, file resolution, ranges); blob-download.ts places and
 * checks each file.
 */
export async function pull(spec: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseModelRef(spec);
  const settings = storeSettings(opts);
  const cache = new RepoCache(settings.cacheDir, ref.repo);
  const want: SelectionRequest = { file: ref.file, files: ref.entry?.files };
  if (settings.offline) return fromCache(ref, cache, want, settings, "HF_HUB_OFFLINE is set");
  const hub = new HubFetch(settings, opts.signal);
  const ctx = { repo: ref.repo, revision: ref.revision, file: ref.file };
  let info;
  try {
    info = await modelInfo({
      name: ref.repo,
      revision: ref.revision,
      hubUrl: settings.endpoint,
      accessToken: settings.token,
      fetch: hub.fetch,
      additionalFields: ["sha", "filePaths", "cardData", "tags"],
    });
  } catch (e) {
    if (e instanceof HubUnreachableError && cache.snapshotOf(ref.revision)) {
      opts.onStatus?.(`${e.message}; using the copy in the Hugging Face cache`);
      return fromCache(ref, cache, want, settings, e.message);
    }
    throw hubFailure(e, ctx, hub, settings);
  }
  const commit = String(info.sha ?? "");
  if (!REGEX_COMMIT_HASH.test(commit))
    throw new HubError(`the Hub gave no commit for ${ref.repo}@${ref.revision} (sha "${commit}"); check HF_ENDPOINT`);
  const available = info.filePaths ?? [];
  let files = selectFiles(ref.repo, ref.revision, available, want);
  const cachedAlready = (f: string) => cache.has(commit, f);
  // A pipeline's model_index.json says which of its folders are components (not a second VAE, not an export).
  const pipeline = files.includes(MODEL_INDEX) && !want.file && !want.files;
  const narrow = (index: string) =>
    (files = selectFiles(ref.repo, ref.revision, available, {
      components: componentsOf(readModelIndex(index, ref.repo)),
    }));
  if (pipeline && cachedAlready(MODEL_INDEX)) narrow(join(cache.snapshot(commit), MODEL_INDEX));
  const complete = files.every(cachedAlready);
  const license = complete
    ? new PullRecords(settings.home).get(ref.repo)?.license
    : await repoLicense(ref, info, hub, settings, commit);
  if (!complete) await acceptLicense(license!, what(ref), spec, opts, settings);

  const gated = info.gated !== false && info.gated !== undefined;
  const fetched = new Map<string, string>();
  let received = 0;
  const download = async (file: string) => {
    const blob = await fetchBlob({
      cache,
      commit,
      file,
      hub,
      settings,
      gated,
      onProgress: opts.onProgress,
      signal: opts.signal,
    });
    received += blob.received;
    fetched.set(file, blob.etag);
    return blob;
  };
  if (pipeline && !cachedAlready(MODEL_INDEX)) narrow(cache.blob((await download(MODEL_INDEX)).etag));
  const missing = files.filter((f) => !cachedAlready(f) && !fetched.has(f));
  for (const file of missing) await download(file);
  // The snapshot's links are made only once every blob is whole and checked: a model folder never holds half a model.
  for (const [file, etag] of fetched) cache.link(commit, file, etag);
  const downloaded = [...fetched.keys()];
  cache.writeRef(ref.revision, commit);
  if (license)
    new PullRecords(settings.home).put({
      repo: ref.repo,
      revision: ref.revision,
      commit,
      license,
      pulledAt: new Date().toISOString(),
    });
  const snapshot = cache.snapshot(commit);
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit,
    snapshot,
    path: modelPath(snapshot, ref),
    files,
    license,
    received,
    downloaded,
  };
}

const MODEL_INDEX = "model_index.json";

function readModelIndex(path: string, repo: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new HubError(
      `${MODEL_INDEX} of ${repo} is not valid JSON (${(e as Error).message}); the repository is damaged, or pull one file of it with ${repo}:FILE`,
    );
  }
}

function what(ref: ModelRef): string {
  return ref.entry ? `${ref.entry.name} (${ref.repo})` : ref.file ? `${ref.file} of ${ref.repo}` : ref.repo;
}

function modelPath(snapshot: string, ref: ModelRef): string {
  const inside = ref.entry?.path ?? ref.file;
  return inside ? join(snapshot, inside) : snapshot;
}

/**
 * The licence the repository states (its model card metadata or tags, else the card's text), else the catalogue's;
 * a repository that names none gets a notice saying so, which is accepted for that repository alone.
 */
async function repoLicense(
  ref: ModelRef,
  info: { cardData?: unknown; tags?: unknown },
  hub: HubFetch,
  settings: StoreSettings,
  commit: string,
): Promise<LicenseNotice> {
  let fields: LicenseFields = licenseFromModelInfo(info);
  if (!fields.license && ref.entry) fields = ref.entry.license;
  if (!fields.license && !fields.licenseName) fields = await readmeLicense(ref.repo, commit, hub, settings);
  return describeLicense(fields, ref.repo, settings.endpoint);
}

async function readmeLicense(
  repo: string,
  commit: string,
  hub: HubFetch,
  settings: StoreSettings,
): Promise<LicenseFields> {
  try {
    const res = await hub.fetch(`${settings.endpoint}/${repo}/resolve/${commit}/README.md`, {
      headers: settings.token ? { authorization: `Bearer ${settings.token}` } : {},
    });
    if (!res.ok) {
      await res.body?.cancel();
      return {};
    }
    return licenseFromModelCard((await res.text()).slice(0, 64 * 1024));
  } catch {
    return {}; // no card: the notice says the repository names no licence
  }
}

async function acceptLicense(
  license: LicenseNotice,
  what: string,
  spec: string,
  opts: PullOptions,
  settings: StoreSettings,
): Promise<void> {
  const records = new LicenseAcceptances(settings.home);
  if (records.get(license.id)) return;
  if (opts.acceptLicense) {
    records.accept(license);
    opts.onStatus?.(`accepted the ${license.name} licence (${license.url}) for ${what}; recorded in ${records.file}`);
    return;
  }
  if (opts.confirmLicense) {
    if (await opts.confirmLicense(license, what)) {
      records.accept(license);
      return;
    }
    throw new LicenseNotAcceptedError(`the ${license.name} licence was not accepted, so ${what} was not downloaded`);
  }
  throw new LicenseNotAcceptedError(
    `${what} comes under the ${license.name} licence (${license.url}), which has not been accepted yet: ` +
      `run \`diffuse pull ${spec}\` at a terminal to read and accept it, or add --accept-license to accept it (acceptLicense in the library)`,
  );
}

/** The model as the cache holds it, without the network. */
function fromCache(
  ref: ModelRef,
  cache: RepoCache,
  want: SelectionRequest,
  settings: StoreSettings,
  reason: string,
): PullResult {
  const commit = cache.commitOf(ref.revision);
  const howTo = settings.offline
    ? `unset HF_HUB_OFFLINE and run \`diffuse pull ${entryOrRef(ref)}\``
    : `run \`diffuse pull ${entryOrRef(ref)}\` once the Hub can be reached`;
  if (!commit)
    throw new HubError(`${reason}, and ${what(ref)} is not in the Hugging Face cache (${settings.cacheDir}): ${howTo}`);
  const snapshot = cache.snapshot(commit);
  const files = want.file !== undefined ? [want.file] : want.files ? [...want.files] : filesUnder(snapshot);
  const absent = files.filter((f) => !cache.has(commit, f));
  if (absent.length || files.length === 0) {
    throw new HubError(
      `${reason}, and the cached copy of ${what(ref)} is incomplete (${absent.join(", ") || "no files"} missing): ${howTo}`,
    );
  }
  const license = new PullRecords(settings.home).get(ref.repo)?.license;
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit,
    snapshot,
    path: modelPath(snapshot, ref),
    files,
    license,
    received: 0,
    downloaded: [],
  };
}

function entryOrRef(ref: ModelRef): string {
  return (
    ref.entry?.name ??
    `${ref.repo}${ref.revision === "main" ? "" : `@${ref.revision}`}${ref.file ? `:${ref.file}` : ""}`
  );
}

function filesUnder(dir: string, prefix = ""): string[] {
  let entries;
  try {
    entries = readdirSync(join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? filesUnder(dir, rel) : [rel];
  });
}
