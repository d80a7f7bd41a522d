import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Set to the run's folder while it is TMPDIR: how a second setup of the same run recognises it. */
const RUN_FOLDER = "DIFFUSE_TEST_RUN_DIR";

/**
 * Vitest global setup: one temp folder for the whole run, removed when it ends. Tests make their caches, outputs and
 * model copies under tmpdir(), which reads TMPDIR; pointing it here (before the test workers start, so they and the
 * processes they spawn inherit it) gathers all of them in one place, and no test has to remember to clean up.
 * Returns the teardown, which removes the folder and gives TMPDIR back its previous value.
 *
 * Vitest runs a global setup once for the root config and again for each project that extends it: those later calls
 * keep the first folder. Nested, each call's folder inside the last, the paths grew past what a Unix socket takes
 * (108 bytes), and Chromium could not start its singleton socket under them.
 */
export default function runTempFolder(): () => void {
  if (process.env[RUN_FOLDER] !== undefined && process.env[RUN_FOLDER] === process.env.TMPDIR) return () => {};
  const previous = process.env.TMPDIR;
  const folder = mkdtempSync(join(tmpdir(), "diffuse-test-run-"));
  process.env.TMPDIR = folder;
  process.env[RUN_FOLDER] = folder;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    delete process.env[RUN_FOLDER];
    rmSync(folder, { recursive: true, force: true });
  };
}
