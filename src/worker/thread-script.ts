import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Starts a worker thread on a module beside the caller, given without extension (`./pipeline-thread`). Built
 * code (dist/) starts the .js file. Run from the TypeScript sources (tests, `tsx bench/...`), the thread first
 * registers tsx's loader, which a worker does not inherit from vitest, and then imports the .ts file.
 */
export function startThread(base: string, relative: string, options: WorkerOptions): Worker {
  if (!base.endsWith(".ts")) return new Worker(new URL(`${relative}.js`, base), options);
  const entry = new URL(`${relative}.ts`, base).href;
  // The ESM build of tsx's API: its CommonJS build cannot register the loader from an evaluated script.
  const api = pathToFileURL(
    createRequire(base)
      .resolve("tsx/esm/api")
      .replace(/\.cjs$/, ".mjs"),
  ).href;
  const script = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(script, { ...options, eval: true });
}
