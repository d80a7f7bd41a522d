// Run by model-files.test.ts in a child process: opens each path as the given kind of model file and prints one
// JSON line per case with the error it got. A child, because before the fix opening a named pipe blocked the
// whole process, which a test timeout in the same process cannot interrupt.
import { readGenerationConfig } from "../../src/pipeline/generation-config.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";

export type OpenKind = "safetensors" | "checkpoint" | "tokenizer" | "generation-config";

const openers: Record<OpenKind, (path: string) => Promise<unknown>> = {
  safetensors: async (path) => SafetensorsFile.open(path).close(),
  checkpoint: async (path) => openCheckpoint(path).close(),
  tokenizer: (path) => ClipTokenizer.load(path),
  "generation-config": async (path) => readGenerationConfig([path]),
};

for (const { kind, path } of JSON.parse(process.argv[2]!) as { kind: OpenKind; path: string }[]) {
  try {
    await openers[kind](path);
    process.stdout.write(JSON.stringify({ kind, path, error: null }) + "\n");
  } catch (e) {
    process.stdout.write(
      JSON.stringify({ kind, path, error: (e as Error).constructor.name, message: (e as Error).message }) + "\n",
    );
  }
}
