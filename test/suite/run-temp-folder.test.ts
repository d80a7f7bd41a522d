/**
 * Test files make temp folders with mkdtempSync(join(tmpdir(), ...)) for caches, outputs and model copies, and most
 * never removed them: every run of the suite left hundreds of MB in /tmp. The run's global setup points TMPDIR at one
 * folder of its own and removes it when the run ends, so every test's folders (and those of the processes it
 * spawns, which inherit TMPDIR) go with it.
 */
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import runTempFolder from "../helpers/run-temp-folder.js";

describe("the test run's temp folder", () => {
  it("holds what this run's tests make in tmpdir()", () => {
    const mine = mkdtempSync(join(tmpdir(), "diffuse-run-temp-"));
    expect(basename(dirname(mine))).toMatch(/^diffuse-test-run-/);
  });

  it("is removed with everything in it when the run ends, and TMPDIR is restored", () => {
    const before = process.env.TMPDIR;
    const teardown = runTempFolder();
    const run = tmpdir();
    expect(run).not.toBe(before);
    const folder = mkdtempSync(join(tmpdir(), "diffuse-leftover-"));
    writeFileSync(join(folder, "cache.bin"), "x");
    teardown();
    expect(existsSync(run)).toBe(false);
    expect(process.env.TMPDIR).toBe(before);
  });
});
