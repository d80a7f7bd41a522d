import { join } from "node:path";
import { readJsonObject, writeJsonObject } from "./json-file.js";
import type { LicenseNotice } from "./licenses.js";

export interface Acceptance {
  readonly name: string;
  readonly url: string;
  /** ISO 8601 date and time of the acceptance. */
  readonly acceptedAt: string;
}

/**
 * The licences a user has accepted, once each, with the date: DIFFUSE_HOME/accepted-licenses.json. Accepting the
 * CreativeML Open RAIL-M licence for one model covers every model under it; a licence of a repository's own kind
 * ("other") is recorded under its name, so each is accepted by itself.
 */
export class LicenseAcceptances {
  readonly file: string;

  constructor(home: string) {
    this.file = join(home, "accepted-licenses.json");
  }

  get(id: string): Acceptance | undefined {
    const all = readJsonObject(this.file);
    const a = all[id] as Partial<Acceptance> | undefined;
    return a && typeof a.acceptedAt === "string" ? (a as Acceptance) : undefined;
  }

  accept(license: LicenseNotice, when: Date = new Date()): Acceptance {
    const all = readJsonObject(this.file);
    const record: Acceptance = { name: license.name, url: license.url, acceptedAt: when.toISOString() };
    all[license.id] = record;
    writeJsonObject(this.file, all);
    return record;
  }
}
