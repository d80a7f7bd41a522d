import { join } from "node:path";
import { readJsonObject, writeJsonObject } from "./json-file.js";
import type { LicenseNotice } from "./licenses.js";

export interface PullRecord {
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly license: LicenseNotice;
  readonly pulledAt: string;
}

/**
 * What `diffuse pull` fetched, by repository: DIFFUSE_HOME/pulled.json. The files themselves are in the Hugging Face
 * cache; this keeps what the cache does not, the licence the model came under, so `diffuse models` can show it
 * offline.
 */
export class PullRecords {
  readonly file: string;

  constructor(home: string) {
    this.file = join(home, "pulled.json");
  }

  get(repo: string): PullRecord | undefined {
    const r = readJsonObject(this.file)[repo.toLowerCase()] as PullRecord | undefined;
    return r && typeof r.repo === "string" && r.license && typeof r.license.id === "string" ? r : undefined;
  }

  put(record: PullRecord): void {
    const all = readJsonObject(this.file);
    all[record.repo.toLowerCase()] = record;
    writeJsonObject(this.file, all);
  }
}
