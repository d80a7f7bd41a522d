import { existsSync, statSync } from "node:fs";
import { InputError, type LoraRequest } from "../index.js";

/** `--lora-dir` and `--embeddings-dir`: a folder named on the command line must exist (the defaults may not). */
export function adapterFolderOptions(o: { loraDir?: string; embeddingsDir?: string }): {
  loraDir?: string;
  embeddingsDir?: string;
} {
  for (const [flag, dir] of [
    ["--lora-dir", o.loraDir],
    ["--embeddings-dir", o.embeddingsDir],
  ] as const) {
    if (dir !== undefined && !(existsSync(dir) && statSync(dir).isDirectory())) {
      throw new InputError(`${flag} ${dir}: no such folder; pass the folder that holds the .safetensors files`);
    }
  }
  return { loraDir: o.loraDir, embeddingsDir: o.embeddingsDir };
}

/**
 * `--lora NAME:W` (or `NAME:W_TE:W_UNET`, or NAME alone for 1), the command-line form of `<lora:NAME:W>`: NAME is
 * a LoRA of the LoRA folder or the path of a .safetensors file. The weights are the trailing numbers, so a path
 * may hold colons.
 */
export function loraOption(values: readonly string[]): LoraRequest[] {
  return values.map((value) => {
    const parts = value.split(":");
    const weights: number[] = [];
    while (
      parts.length > 1 &&
      weights.length < 2 &&
      /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(parts[parts.length - 1]!.trim())
    )
      weights.unshift(Number(parts.pop()!.trim()));
    const name = parts.join(":");
    if (name === "")
      throw new InputError(
        `--lora ${JSON.stringify(value)}: give NAME:WEIGHT, NAME being a LoRA of the LoRA folder or a .safetensors path`,
      );
    const isPath = /\.safetensors$/i.test(name) || /[\\/]/.test(name);
    const [te, unet] = weights.length === 2 ? weights : [weights[0] ?? 1, weights[0] ?? 1];
    return { ...(isPath ? { path: name } : { name }), textEncoderWeight: te, unetWeight: unet };
  });
}
