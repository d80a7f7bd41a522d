import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Vitest global setup: one temp folder for the whole run, removed when it ends. Tests make their caches, outputs and
 * model copies under tmpdir(), which reads TMPDIR; pointing it here (before the test workers start, so they and the
 * processes they spawn inherit it) gathers all of them in one place, and no test has to remember to clean up.
 * Returns the teardown, which removes the folder and gives TMPDIR back its previous value.
 */
export default function runTempFolder(): () => void {
  const previous = process.env.TMPDIR;
  const folder = mkdtempSync(join(tmpdir(), "diffuse-test-run-"));
  process.env.TMPDIR = folder;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(folder, { recursive: true, force: true });
  };
}
