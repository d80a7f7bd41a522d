import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The CLI as the tests spawn it: src/ compiled once into .test-dist/ (laid out like dist/, so the paths the code
 * finds relative to itself, web/dist and models/, resolve the same), rebuilt whenever a source file is newer.
 * Spawning compiled JavaScript takes about half the time of `node --import tsx` (which compiles every module
 * at every start), and the suite spawns the CLI a few hundred times.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const OUT = join(ROOT, ".test-dist");
const STAMP = join(OUT, ".sources");
const RUNNER = join(OUT, "run-cli.mjs");

/** `node ARGS` that runs `diffuse ...cliArgs` from the current sources. */
export function cliCommand(cliArgs: readonly string[]): { command: string; args: string[] } {
  ensureCompiled();
  return { command: process.execPath, args: [RUNNER, ...cliArgs] };
}

function ensureCompiled(): void {
  const sources = sourceStamp();
  if (existsSync(RUNNER) && existsSync(STAMP) && readFileSync(STAMP, "utf8") === sources) return;
  // Compiled into a private folder and renamed into place, so a concurrent run never sees half a build.
  const tmp = `${OUT}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  execFileSync(
    process.execPath,
    [
      join(ROOT, "node_modules/typescript/bin/tsc"),
      "-p",
      join(ROOT, "tsconfig.build.json"),
      "--outDir",
      tmp,
      "--declaration",
      "false",
      "--sourceMap",
      "false",
    ],
    { stdio: "inherit" },
  );
  writeFileSync(join(tmp, "run-cli.mjs"), 'import { main } from "./cli/main.js";\nawait main(process.argv);\n');
  writeFileSync(join(tmp, ".sources"), sources);
  rmSync(OUT, { recursive: true, force: true });
  try {
    renameSync(tmp, OUT);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another run put its build in place first
  }
}

/** Every source file's path, size and modification time: any edit changes it. */
function sourceStamp(): string {
  return filesStamp([join(ROOT, "src")], (name) => name.endsWith(".ts"));
}

/** The path, size and modification time of every file under `dirs` that `take` accepts (folders named in `skip` left out). */
export function filesStamp(
  dirs: readonly string[],
  take: (name: string) => boolean,
  skip: readonly string[] = [],
): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!skip.includes(p)) walk(p);
      } else if (take(e.name)) {
        const s = statSync(p);
        lines.push(`${p} ${s.size} ${s.mtimeMs}`);
      }
    }
  };
  for (const dir of dirs) walk(dir);
  return lines.sort().join("\n");
}
