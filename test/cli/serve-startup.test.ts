/**
 * `serve` checks its model before it listens: a model it cannot load ends the command with exit 2 and the reason,
 * instead of a server that looks healthy and fails every request.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/cli.js";

describe("diffuse serve with a model it cannot load", () => {
  it("exits 2 before listening, naming the file and what is wrong with it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-serve-startup-"));
    const broken = join(dir, "broken.safetensors");
    writeFileSync(broken, "this is not a safetensors file");
    let listening = false;
    const r = await runCli(["serve", "--model", broken, "--port", "0", "--data", join(dir, "data")], {
      env: { DIFFUSE_CACHE: join(dir, "cache") },
      onSpawn: (child) =>
        child.stderr!.on("data", (d) => {
          // Should it start anyway, stop it so the test fails on the assertions rather than hanging.
          if (String(d).includes("diffuse serving")) {
            listening = true;
            child.kill("SIGTERM");
          }
        }),
    });
    expect(listening).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("broken.safetensors");
    expect(r.stderr).toMatch(/cannot serve/);
  });
});
