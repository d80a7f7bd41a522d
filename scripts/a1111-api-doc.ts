/**
 * Writes the generated tables of docs/a1111-api.md (routes and request fields) from src/server/a1111-coverage.ts:
 * `npm run docs:a1111`. With --check, writes nothing and fails when the committed document differs.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderA1111Doc } from "../src/server/a1111-coverage-doc.js";

const path = fileURLToPath(new URL("../docs/a1111-api.md", import.meta.url));
const current = readFileSync(path, "utf8");
const next = renderA1111Doc(current);
if (process.argv.includes("--check")) {
  if (next !== current) {
    process.stderr.write("docs/a1111-api.md is out of date: run npm run docs:a1111\n");
    process.exit(1);
  }
} else if (next !== current) {
  writeFileSync(path, next);
  process.stdout.write("docs/a1111-api.md updated\n");
}
