import { readFileSync } from "node:fs";

/** One mapping of a file into this process: which bytes of the file, and whether any of its pages went private. */
export interface FileMapping {
  /** Offset in the file of the mapping's first byte. */
  readonly offset: number;
  readonly length: number;
  /** Pages of the mapping that were copied on write: they no longer show what the file holds. */
  readonly privatePages: boolean;
  readonly pageSize: number;
}

/**
 * The mappings of one file (`path`, as it was created, and its inode) in this process, as Linux lists them in
 * /proc/self/smaps; undefined where there is no such list (other systems), so a caller can tell "none" from
 * "cannot tell".
 */
export function fileMappings(path: string, inode: number): FileMapping[] | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/self/smaps", "utf8");
  } catch {
    return undefined;
  }
  const out: FileMapping[] = [];
  let current: { offset: number; length: number; pageSize: number; privatePages: boolean } | undefined;
  const flush = () => {
    if (current) out.push(current);
    current = undefined;
  };
  for (const line of text.split("\n")) {
    // "start-end perms offset dev inode path", the path followed by " (deleted)" once the file is unlinked
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ (\d+)\s+(.*)$/.exec(line);
    if (header) {
      flush();
      const name = header[5]!.replace(/ \(deleted\)$/, "");
      if (Number(header[4]) === inode && name === path) {
        current = {
          offset: parseInt(header[3]!, 16),
          length: parseInt(header[2]!, 16) - parseInt(header[1]!, 16),
          pageSize: 0,
          privatePages: false,
        };
      }
      continue;
    }
    if (!current) continue;
    const field = /^(KernelPageSize|Anonymous):\s+(\d+) kB$/.exec(line);
    if (field?.[1] === "KernelPageSize") current.pageSize = Number(field[2]) * 1024;
    else if (field?.[1] === "Anonymous") current.privatePages = Number(field[2]) > 0;
  }
  flush();
  return out;
}
