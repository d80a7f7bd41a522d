import { readFileSync } from "node:fs";
import { arch, cpus } from "node:os";
import ort from "onnxruntime-node";
import { sha256 } from "./file-digest.js";

/**
 * What the layout onnxruntime picks for a graph depends on: its version, and the CPU, by model name and (on Linux)
 * by its instruction-set flags, since the same model name can come with AVX-512 turned off (virtual machines),
 * which changes the block size of its blocked convolution layout.
 */
export function runtimeFingerprint(): string {
  let flags = "";
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "";
  } catch {
    // not Linux: the model name has to do
  }
  const model = cpus()[0]?.model ?? "";
  const cpu = flags ? `${model} (${arch()}, flags ${sha256(Buffer.from(flags)).slice(0, 16)})` : `${model} (${arch()})`;
  return `onnxruntime ${ort.env.versions.node ?? ""}, ${cpu}`;
}
