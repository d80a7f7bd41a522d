/**
 * The CLI stands on the public API (DESIGN.md: "the CLI uses only what src/index.ts exports"): every import of src/cli
 * that leaves the folder goes through src/index.ts (or src/server-api.ts, the public `diffuse/server` entry for
 * `serve` and `worker`), except the plumbing below, which is the CLI's own business and
 * not library functionality (each with the reason it stays out of the public API).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), "../../src/cli");

/** The package's public entry points: `diffuse` and `diffuse/server`. */
const PUBLIC = ["../index.js", "../server-api.js"];

const PLUMBING: Record<string, string> = {
  "../errors.js":
    "the entry (main.ts) tells a DiffuseError from a crash before any command's module loads; the same classes " +
    "index.ts re-exports, without loading the whole library for `diffuse info` or `--help`",
  "../upscale/postprocess.js":
    "postprocessUpscale's request takes a ProvenanceSigner, whose C2PA types need Float16Array (lib es2025): " +
    "exported, it would break strict consumers on ES2022 (test/package/consumer-typescript.test.ts)",
  "../responsible/provenance/index.js":
    "signerConfigFromEnv, canCarryCredentials, signableFormatNames: the C2PA signer's types need Float16Array too; " +
    "the library takes a signer through LoadOptions.provenance instead; and verifyImage, whose report carries C2PA " +
    "validation types that need Float16Array (the same consumer test)",
  "../worker/close-bullmq.js": "a timeout around closing bullmq connections when the worker command exits",
  "../image/exif-user-comment.js": "sizes the EXIF segment of a JPEG before generating (generate's up-front check)",
  "../image/jpeg-exif.js": "the same up-front check: whether that EXIF segment fits a JPEG's 64 KB",
  "../regular-file.js": "reads a side file (a C2PA manifest) refusing FIFOs and devices, for verify's arguments",
  "../json-exact.js": "prints verify's JSON report with big integers exact",
  "../hub/hub-cache.js": "the Hugging Face cache's layout, for `pull --list` marking what is downloaded",
  "../hub/store-settings.js": "the store's folders from the environment, for `pull --list`",
};

/** Every module specifier a CLI file imports, statically or with import(). */
function importsOf(source: string): string[] {
  const found = [...source.matchAll(/\bfrom\s+"([^"]+)"/g), ...source.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)];
  return found.map((m) => m[1]!);
}

describe("the CLI's imports", () => {
  const files = readdirSync(CLI).filter((f) => f.endsWith(".ts"));
  const outside = files.flatMap((f) =>
    importsOf(readFileSync(join(CLI, f), "utf8"))
      .filter((spec) => spec.startsWith("../"))
      .map((spec) => ({ file: f, spec })),
  );

  it("reach src only through the public entry points, beyond the listed plumbing", () => {
    expect(files.length).toBeGreaterThan(10);
    expect(outside.some((i) => i.spec === "../index.js")).toBe(true);
    expect(outside.some((i) => i.spec === "../server-api.js")).toBe(true);
    expect(outside.filter((i) => !PUBLIC.includes(i.spec) && !(i.spec in PLUMBING))).toEqual([]);
  });

  it("still use every plumbing module listed (the list names no more than the CLI needs)", () => {
    const used = new Set(outside.map((i) => i.spec));
    expect(Object.keys(PLUMBING).filter((m) => !used.has(m))).toEqual([]);
  });
});
