import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ref } from "./fixtures.js";

/**
 * A writable copy of a reference model folder (models/<name>) in a new temp folder, to vary its config files:
 * all of it, or only the listed top-level entries.
 */
export function copyModelFolder(name: string, only?: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), `diffuse-${name}-copy-`));
  const from = ref("models", name);
  for (const entry of only ?? readdirSync(from)) copyEntry(join(from, entry), join(dir, entry));
  return dir;
}

function copyEntry(from: string, to: string): void {
  if (!statSync(from).isDirectory()) return copyFileSync(from, to);
  mkdirSync(to);
  for (const e of readdirSync(from)) copyEntry(join(from, e), join(to, e));
}
