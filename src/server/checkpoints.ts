import { realpathSync } from "node:fs";
import type { ListedModel, ListOptions } from "../hub/list-models.js";
import { a1111Title, matchesModel } from "./a1111-mapping.js";

/** A checkpoint a server can serve: one the model store lists, or the one it was started with. */
export interface KnownCheckpoint {
  /** What jobs record and the APIs accept (the store's name; the started model keeps its own). */
  readonly name: string;
  readonly path: string;
  /** AUTOMATIC1111's short hash and the sha256 (absent for the started model until it has loaded). */
  readonly hash?: string;
  readonly sha256?: string;
  /** sd1, sd2, sdxl, ... as the store detected it ("unknown" for the started model outside the store). */
  readonly family: string;
  /** store, hf-cache, a1111, comfyui, invokeai, folder; "given" for the started model outside the store. */
  readonly source: string;
  /** Other names that find it: the store's aliases, its store name when the started model keeps its own. */
  readonly aliases: readonly string[];
}

/**
 * The checkpoints a server knows: what the model store lists (`diffuse models`: the store, the Hugging Face cache,
 * other tools' folders), scanned once and again on `refresh()` (A1111's refresh-checkpoints), plus the model the
 * server was started with. A client names one as A1111 accepts it: its title "name [hash]", name, file name, short
 * hash or sha256; only these can be served, never a path a client sends.
 */
export class Checkpoints {
  /** The current scan: names and paths at once (file headers only), then the same with hashes (each file once). */
  private quick: Promise<KnownCheckpoint[]> | undefined;
  private full: Promise<KnownCheckpoint[]> | undefined;
  /** The hashed list, once the current scan has it. */
  private hashed: KnownCheckpoint[] | undefined;

  /** `store` undefined: only the started model is known (with --queue the workers load the models, not this server). */
  constructor(
    private readonly started: { name: string; path: string },
    private readonly store: ListOptions | undefined,
  ) {}

  /** Whether only the started model is known (a server with --queue). */
  get startedOnly(): boolean {
    return this.store === undefined;
  }

  /**
   * Every known checkpoint, the started one first; scans the store the first time. With `hashes`, waits for every
   * hash (hashing a large file the first time takes a while: A1111's titles need them); without, answers with the
   * hashes known so far.
   */
  async list(opts: { hashes?: boolean } = {}): Promise<KnownCheckpoint[]> {
    if (!this.quick || !this.full) this.startScan();
    if (opts.hashes) return this.full!;
    return this.hashed ?? this.quick!;
  }

  /** Scans the store again: files added or removed since are found. */
  refresh(opts: { hashes?: boolean } = {}): Promise<KnownCheckpoint[]> {
    this.startScan();
    return this.list(opts);
  }

  /** The checkpoint a client's value names (see the class), or undefined. Exact spellings win over case-folded ones. */
  async find(value: string): Promise<KnownCheckpoint | undefined> {
    const v = value.trim();
    const lower = v.toLowerCase();
    const pick = (all: KnownCheckpoint[]) =>
      all.find((c) => matches(v, c)) ?? all.find((c) => matches(lower, c, (s) => s.toLowerCase()));
    // Names first from what is listed now; a title or hash may need the hashes.
    return pick(await this.list()) ?? pick(await this.list({ hashes: true }));
  }

  private startScan(): void {
    this.hashed = undefined;
    const quick = this.scan(false);
    const full = this.scan(true);
    this.quick = quick;
    this.full = full;
    // A failed scan is not kept: the next request tries again.
    const forget = () => {
      if (this.full === full) this.quick = this.full = undefined;
    };
    quick.catch(forget);
    full.then((list) => {
      if (this.full === full) this.hashed = list;
    }, forget);
  }

  private async scan(hashes: boolean): Promise<KnownCheckpoint[]> {
    if (!this.store)
      return [{ name: this.started.name, path: this.started.path, family: "unknown", source: "given", aliases: [] }];
    // The store's code (and the Hub client with it) loads when a client first asks, not at every start.
    const { listModels } = await import("../hub/list-models.js");
    const listed = (await listModels({ ...this.store, hashes: hashes && this.store.hashes !== false })).filter(
      (m) => m.kind === "checkpoint" && m.problem === undefined,
    );
    const startedReal = realOrSame(this.started.path);
    const own = listed.find((m) => realOrSame(m.path) === startedReal);
    const first: KnownCheckpoint = own
      ? {
          ...entryOf(own),
          name: this.started.name,
          path: this.started.path,
          aliases: [own.name, ...own.aliases].filter((n) => n !== this.started.name),
        }
      : { name: this.started.name, path: this.started.path, family: "unknown", source: "given", aliases: [] };
    const rest = listed.filter((m) => m !== own && m.name !== this.started.name).map(entryOf);
    return [first, ...rest.sort((a, b) => a.name.localeCompare(b.name))];
  }
}

function entryOf(m: ListedModel): KnownCheckpoint {
  return {
    name: m.name,
    path: m.path,
    ...(m.hash !== undefined && m.sha256 !== undefined ? { hash: m.hash, sha256: m.sha256 } : {}),
    family: m.family,
    source: m.source,
    // A1111's "name [hash]" alias is its title, matched as such.
    aliases: m.aliases.filter((a) => !/ \[[0-9a-f]{10}\]$/.test(a)),
  };
}

/** A checkpoint's A1111 title, once its hash is known. */
export function checkpointTitle(c: KnownCheckpoint): string | undefined {
  return c.hash === undefined
    ? undefined
    : a1111Title({ name: c.name, path: c.path, hash: c.hash, sha256: c.sha256 ?? "" });
}

function matches(value: string, c: KnownCheckpoint, fold: (s: string) => string = (s) => s): boolean {
  if ([c.name, ...c.aliases].some((n) => fold(n) === value)) return true;
  if (c.hash === undefined) return false;
  const described = { name: fold(c.name), path: fold(c.path), hash: c.hash, sha256: c.sha256 ?? "" };
  return matchesModel(value, described);
}

function realOrSame(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
