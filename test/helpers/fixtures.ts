import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../../src/weights/safetensors.js";

/**
 * ../shared beside the checkout (CI lays it there; DIFFUSE_SHARED names another place); tests that need it skip with
 * a message when it is absent, except in CI, where a missing folder is a broken setup that skipping would hide.
 */
export const SHARED = process.env.DIFFUSE_SHARED
  ? resolve(process.env.DIFFUSE_SHARED)
  : resolve(dirname(fileURLToPath(import.meta.url)), "../../../shared");
export const REFERENCE = join(SHARED, "fixtures/reference");
export const HAVE_REFERENCE = existsSync(join(REFERENCE, "manifest.json"));
export const MISSING_REFERENCE = `reference fixtures not found at ${REFERENCE}: parity tests skipped (CI lays ../shared beside the checkout)`;

/** CI services set CI=true (GitHub Actions, GitLab, CircleCI, Travis...); "false" or "0" is a local override. */
function inCi(env: NodeJS.ProcessEnv): boolean {
  const v = (env.CI ?? "").trim().toLowerCase();
  return v !== "" && v !== "false" && v !== "0";
}

if (!HAVE_REFERENCE) {
  if (inCi(process.env))
    throw new Error(
      `reference fixtures not found at ${REFERENCE}, and CI=true: in CI the tests that need them must run, not skip. ` +
        "Lay the shared folder beside the checkout (../shared) or set DIFFUSE_SHARED to it.",
    );
  console.warn(MISSING_REFERENCE);
}

export function ref(...parts: string[]): string {
  return join(REFERENCE, ...parts);
}

/** The project's own goldens (made by its dev scripts, e.g. scripts/reference/odd_sizes.py), committed with the tests. */
export const OWN_FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../fixtures");

export type Golden = {
  get(name: string): Float32Array;
  shape(name: string): readonly number[];
  keys(): string[];
  ints(name: string): BigInt64Array;
  metadata(): Readonly<Record<string, string>>;
};

/** Opens a golden safetensors file of the reference fixtures and returns fp32 tensors by name, with their shapes. */
export function golden(...parts: string[]): Golden {
  return goldenAt(ref(...parts));
}

/** The same for a golden at any path. */
export function goldenAt(path: string): Golden {
  const f = SafetensorsFile.open(path);
  return {
    // Integer tensors (timesteps stored as int64) come back as floats too.
    get: (name) => {
      const dtype = f.info(name).dtype;
      if (dtype === "U8") return Float32Array.from(f.bytes(name));
      return dtype.startsWith("I") ? Float32Array.from(f.int64(name), Number) : f.float32(name);
    },
    shape: (name) => f.info(name).shape,
    keys: () => f.keys(),
    ints: (name) => f.int64(name),
    metadata: () => f.metadata,
  };
}

/** ‖a − b‖ / ‖b‖ */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

/** Largest difference between our pixels and the reference's (uint8 values, as floats). */
export function maxPixelDiff(a: Uint8Array, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
