import { readFileSync } from "node:fs";

/**
 * The version in package.json, read at run time: the compiled CLI sits two folders below the package root (dist/cli,
 * or the tests' .test-dist/cli), so the file a user installed is the one that answers `diffuse --version`.
 */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}
