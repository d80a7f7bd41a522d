/**
 * The library speaks camelCase; AUTOMATIC1111's snake_case names live only at the HTTP edge (src/server), which maps
 * them. The compiler itself checks the public request types (GenerateParams, ControlNetUnit, HiresParams, LoadOptions,
 * LoraRequest, WorkerGenerateParams) and every type they reach: library-names.probe.ts compiles only while none has
 * a snake_case key.
 */
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const HERE = dirname(fileURLToPath(import.meta.url));
const TSC = join(resolve(HERE, "../.."), "node_modules/typescript/bin/tsc");

describe("the library's request types", () => {
  it("the public request types and every type they reach have camelCase keys only (no snake_case)", () => {
    const args = ["--ignoreConfig", "--noEmit", "--strict", "--skipLibCheck", "--target", "ES2022"];
    args.push("--module", "NodeNext", "--moduleResolution", "NodeNext", "--types", "node");
    const r = spawnSync(process.execPath, [TSC, ...args, join(HERE, "library-names.probe.ts")], {
      encoding: "utf8",
      cwd: HERE,
    });
    // On failure the compiler names each type's snake_case keys (see the probe).
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  }, 120_000);
});
