import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InternalError } from "../errors.js";

/**
 * A digest of the code that a set of modules runs: their source and that of every module they import, followed
 * through relative imports (static `from` and dynamic `import()` of a path that starts with `./` or `../`; an example
 * written out here would be read as an import of this file). A change to any of them changes it; a change to a
 * module none of them imports does not. Sources are read as they are on disk (`.ts` under tsx and vitest, `.js` in
 * dist), so the digest differs between the two, and is the same for every process of one install. A module that
 * cannot be read (an entry renamed without updating its caller) is an error, not a digest that stops following it.
 */
export function codeDigest(entries: readonly (string | URL)[]): string {
  const sorted = codeFiles(entries);
  const root = commonFolder(sorted);
  const hash = createHash("sha256");
  for (const file of sorted)
    hash
      .update(`${relative(root, file)}\0`)
      .update(readFileSync(file))
      .update("\n");
  return hash.digest("hex");
}

/** The source files `codeDigest` reads: the entries and what they import, sorted. */
export function codeFiles(entries: readonly (string | URL)[]): string[] {
  const files = new Set<string>();
  const pending = entries.map((e) => sourceFile(typeof e === "string" ? e : fileURLToPath(e)));
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    if (!existsSync(file))
      throw new InternalError(
        `code digest: ${file} does not exist (a module was moved: update the list of modules that build graphs)`,
      );
    for (const m of readFileSync(file, "utf8").matchAll(IMPORT))
      pending.push(sourceFile(resolve(dirname(file), m[1] ?? m[2]!)));
  }
  return [...files].sort();
}

/** Static and dynamic imports of relative paths. */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']|\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']/g;

/** TypeScript sources import `./x.js` and are `./x.ts` until compiled. */
function sourceFile(path: string): string {
  if (existsSync(path)) return path;
  const ts = path.replace(/\.js$/, ".ts");
  return existsSync(ts) ? ts : path;
}

function commonFolder(files: readonly string[]): string {
  if (files.length === 0) return "/";
  let root = dirname(files[0]!);
  for (const f of files) while (relative(root, f).startsWith("..") && root !== dirname(root)) root = dirname(root);
  return root;
}
