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
  it("holds what this run's tests make in tmpdir(), one folder deep (not one per project)", () => {
    const mine = mkdtempSync(join(tmpdir(), "diffuse-run-temp-"));
    expect(basename(dirname(mine))).toMatch(/^diffuse-test-run-/);
    // Nested run folders made Chromium's singleton socket path too long for a Unix socket (108 bytes).
    expect(basename(dirname(dirname(mine)))).not.toMatch(/^diffuse-test-run-/);
    expect(join(tmpdir(), "org.chromium.Chromium.XXXXXX", "SingletonSocket").length).toBeLessThan(108);
  });

  it("a second setup in the same run keeps the run's folder", () => {
    const run = tmpdir();
    const teardown = runTempFolder();
    expect(tmpdir()).toBe(run);
    teardown();
    expect(existsSync(run)).toBe(true);
    expect(tmpdir()).toBe(run);
  });

  it("is removed with everything in it when the run ends, and TMPDIR is restored", () => {
    const before = process.env.TMPDIR;
    const marker = process.env.DIFFUSE_TEST_RUN_DIR;
    delete process.env.DIFFUSE_TEST_RUN_DIR; // as a fresh run starts
    const teardown = runTempFolder();
    const run = tmpdir();
    expect(run).not.toBe(before);
    const folder = mkdtempSync(join(tmpdir(), "diffuse-leftover-"));
    writeFileSync(join(folder, "cache.bin"), "x");
    teardown();
    expect(existsSync(run)).toBe(false);
    expect(process.env.TMPDIR).toBe(before);
    if (marker !== undefined) process.env.DIFFUSE_TEST_RUN_DIR = marker;
  });
});
