import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { InputError } from "../errors.js";
import { diffuseHome } from "../hub/diffuse-home.js";

/**
 * Where LoRAs and textual-inversion embeddings are found when no folder is named (`--lora-dir`,
 * `--embeddings-dir`): `loras/` and `embeddings/` in the model store's folder (DIFFUSE_HOME, else the platform's
 * data folder, ~/.local/share/diffuse on Linux).
 */
export function defaultAdapterFolders(env: NodeJS.ProcessEnv = process.env): { loras: string; embeddings: string } {
  const home = diffuseHome(env);
  return { loras: join(home, "loras"), embeddings: join(home, "embeddings") };
}

/** A file of an adapter folder: named, as in A1111, by its file name without the extension. */
export interface AdapterEntry {
  readonly name: string;
  readonly path: string;
  /**
   * A torch.save file, read through the restricted pickle reader (embeddings, kohya's .pt LoRAs); one that asks
   * for more than tensors is refused by name when used, rather than "not found".
   */
  readonly pickle: boolean;
}

/** Files that can hold an adapter: safetensors, and torch.save's formats (see AdapterEntry.pickle). */
const ADAPTER_FILE = /\.(safetensors|pt|ckpt|bin|pth)$/i;
/** A folder tree deeper than this is not an adapter folder (and a symlink loop must end). */
const MAX_DEPTH = 8;

/**
 * A folder of LoRAs or embeddings, scanned with its subfolders as A1111 scans them, the listing kept until
 * `refresh` (or until a name is not found, which rescans once: a file copied in after the start is found).
 */
export class AdapterFolder {
  private entries: AdapterEntry[] | undefined;
  private scannedAt = 0;

  constructor(
    readonly dir: string,
    private readonly what: "LoRA" | "embedding",
  ) {}

  list(): readonly AdapterEntry[] {
    if (!this.entries) {
      this.entries = scan(this.dir);
      this.scannedAt = folderTime(this.dir);
    }
    return this.entries;
  }

  refresh(): void {
    this.entries = undefined;
  }

  /** Rescans when the folder itself changed since the last scan (a file added or removed at its top level). */
  refreshIfChanged(): void {
    if (this.entries && folderTime(this.dir) !== this.scannedAt) this.refresh();
  }

  /** The entry named `name` (its file name without extension), rescanning once when it is not there. */
  find(name: string): AdapterEntry | undefined {
    const exact = (list: readonly AdapterEntry[]) =>
      list.find((e) => e.name === name) ?? unique(list.filter((e) => e.name.toLowerCase() === name.toLowerCase()));
    const found = exact(this.list());
    if (found) return found;
    this.refresh();
    return exact(this.list());
  }

  /** `find`, or an InputError naming the folder and the closest names in it. */
  get(name: string): AdapterEntry {
    const found = this.find(name);
    if (found) return found;
    const close = closeNames(
      name,
      this.list().map((e) => e.name),
    );
    const hint =
      close.length > 0
        ? `did you mean ${close.map((n) => `"${n}"`).join(", ")}?`
        : this.list().length === 0
          ? "the folder holds none"
          : `it holds ${this.list().length}, none with a similar name`;
    throw new InputError(`no ${this.what} named "${name}" in ${this.dir} (a .safetensors file of that name); ${hint}`);
  }
}

function unique<T>(list: readonly T[]): T | undefined {
  return list.length === 1 ? list[0] : undefined;
}

function folderTime(dir: string): number {
  try {
    return statSync(dir).mtimeMs;
  } catch {
    return 0;
  }
}

function scan(dir: string): AdapterEntry[] {
  const out: AdapterEntry[] = [];
  const walk = (at: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(at);
    } catch {
      return; // a missing folder lists nothing; a named one that is missing was refused by the caller
    }
    for (const name of names.sort()) {
      const path = join(at, name);
      let isDir: boolean;
      try {
        isDir = statSync(path).isDirectory();
      } catch {
        continue;
      }
      if (isDir) {
        if (depth < MAX_DEPTH) walk(path, depth + 1);
      } else if (ADAPTER_FILE.test(name)) {
        out.push({ name: name.replace(ADAPTER_FILE, ""), path, pickle: !/\.safetensors$/i.test(name) });
      }
    }
  };
  walk(dir, 0);
  // A .safetensors file wins over a pickle of the same name, and the first of duplicates (by path) over the others.
  out.sort((a, b) => Number(a.pickle) - Number(b.pickle) || relative(dir, a.path).localeCompare(relative(dir, b.path)));
  const seen = new Set<string>();
  return out
    .filter((e) => (seen.has(e.name) ? false : (seen.add(e.name), true)))
    .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
}

/** Up to 5 names within a small edit distance of `name`, or containing it, closest first. */
export function closeNames(name: string, names: readonly string[]): string[] {
  const target = name.toLowerCase();
  const scored = names
    .map((n) => ({ n, d: editDistance(target, n.toLowerCase()) }))
    .filter(
      ({ n, d }) =>
        d <= Math.max(2, Math.floor(target.length / 3)) ||
        n.toLowerCase().includes(target) ||
        (target.length >= 3 && target.includes(n.toLowerCase())),
    );
  return scored
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, 5)
    .map(({ n }) => n);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
