/**
 * Wall time of the README's first command on the embedded default model, as a user sees it: a new process each
 * time, `node bin/diffuse.js generate "<prompt>" -o <file>` with its defaults (20 steps), from start to exit.
 *
 *   npm run bench:default                 [-- --runs 5 --prompt "a red circle on a blue background"]
 *
 * The first run may build the compile cache; the others open it. Needs `npm run build` (npm install does it).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    prompt: { type: "string", default: "a red circle on a blue background" },
  },
});
const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 2)
  throw new Error(`--runs ${args.runs}: expected a whole number of at least 2 (one cold, the rest warm)`);

const root = resolve(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "diffuse-bench-default-"));
// A cache of its own, so the first run really is cold and nothing else on the machine is touched.
const env = { ...process.env, DIFFUSE_CACHE: join(work, "cache") };
const seconds: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    const out = join(work, `out-${i}.png`);
    const start = performance.now();
    const done = spawnSync(
      process.execPath,
      [join(root, "bin/diffuse.js"), "generate", args.prompt!, "-o", out, "--seed", String(i)],
      { env, encoding: "utf8" },
    );
    const s = (performance.now() - start) / 1000;
    if (done.status !== 0) throw new Error(`run ${i} exited ${done.status}:\n${done.stderr}`);
    statSync(out);
    seconds.push(s);
    process.stderr.write(`run ${i}: ${s.toFixed(2)} s${i === 0 ? " (cold cache)" : ""}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const warm = seconds.slice(1).sort((a, b) => a - b);
const median = warm[Math.floor(warm.length / 2)]!;
console.log(`diffuse generate on the embedded default model (20 steps, 64x64), ${runs} runs as new processes:`);
console.log(
  `cold cache ${seconds[0]!.toFixed(2)} s; warm median ${median.toFixed(2)} s (min ${warm[0]!.toFixed(2)}, max ${warm[warm.length - 1]!.toFixed(2)})`,
);
