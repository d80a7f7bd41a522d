/**
 * The tests that need ../shared skip without it, so a checkout without the fixtures still runs the rest; in CI that
 * skip would turn a broken setup into a green run, so there (CI=true, as CI services set it) a missing folder fails.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const nowhere = join(mkdtempSync(join(tmpdir(), "diffuse-no-shared-")), "shared");

/** Imports the fixtures helper in a fresh process, as a test file does, with ../shared pointed at `shared`. */
function importFixtures(env: Record<string, string>): { status: number | null; output: string } {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", 'await import("./test/helpers/fixtures.ts");'],
    { cwd: ROOT, env: { ...process.env, CI: "", ...env }, encoding: "utf8" },
  );
  return { status: r.status, output: r.stdout + r.stderr };
}

describe("a missing ../shared", () => {
  it("fails the run in CI, naming the folder and how to provide it", () => {
    const r = importFixtures({ CI: "true", DIFFUSE_SHARED: nowhere });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain(join(nowhere, "fixtures/reference"));
    expect(r.output).toMatch(/CI=true/);
  });

  it("only warns outside CI, so the tests that need it skip", () => {
    const r = importFixtures({ DIFFUSE_SHARED: nowhere });
    expect(r.status).toBe(0);
    expect(r.output).toMatch(/reference fixtures not found.*skipped/);
  });
});
