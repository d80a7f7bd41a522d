import { createHash } from "node:crypto";
import { relative } from "node:path";
import type { Checkpoint } from "./checkpoint.js";
import { sha256File } from "./hash.js";

/**
 * The identity of a checkpoint: for a single file, its sha256 (so the short hash is AUTOMATIC1111's); for a
 * diffusers folder, the sha256 of the list "relative path  sha256" of every file read, configs included.
 */
export async function checkpointSha256(
  ckpt: Pick<Checkpoint, "layout" | "path" | "files">,
  hashFile: (path: string) => Promise<string> = (p) => sha256File(p),
): Promise<string> {
  if (ckpt.layout === "single-file") return hashFile(ckpt.path);
  const lines: string[] = [];
  for (const f of [...ckpt.files].sort()) lines.push(`${relative(ckpt.path, f)}  ${await hashFile(f)}`);
  return createHash("sha256").update(lines.join("\n")).digest("hex");
}
