import { existsSync } from "node:fs";

/**
 * The file or folder a --model (or --refiner) value names: a path as it is, else what the store resolves it to
 * (a catalogue name, a repository in the Hugging Face cache, a name `diffuse models` lists). The store's code,
 * and the Hub client with it, loads only for a name, so a run given a path starts as fast as before.
 */
export async function modelOption(value: string): Promise<string> {
  if (existsSync(value)) return value;
  const { resolveModelPath } = await import("../index.js");
  return resolveModelPath(value);
}
