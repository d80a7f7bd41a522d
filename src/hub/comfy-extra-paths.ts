import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { InputError } from "../errors.js";

/**
 * ComfyUI's extra_model_paths.yaml: sections (one per other tool or disk) of a base_path and, per model type, a
 * folder or several (a `|` block, one folder per line), relative to base_path:
 *
 *   a111:
 *       base_path: /home/me/stable-diffusion-webui/
 *       checkpoints: models/Stable-diffusion
 *       loras: |
 *            models/Lora
 *            models/LyCORIS
 *
 * No YAML parser is among the project's dependencies (nor theirs), and this file needs a small part of YAML: nested
 * `key: value` mappings, comments, quoted scalars and literal blocks. That part is read here; anything else in the
 * file (lists, flow collections, anchors, folded blocks) is refused with the line, rather than guessed at.
 */

export interface ExtraPathsSection {
  readonly name: string;
  readonly basePath: string;
  /** ComfyUI's folder names (checkpoints, loras, embeddings, controlnet, vae, diffusers...) -> absolute folders. */
  readonly folders: Readonly<Record<string, readonly string[]>>;
}

export function parseExtraModelPaths(text: string, file: string): ExtraPathsSection[] {
  const lines = text.split(/\r?\n/);
  const raw: { name: string; entries: Map<string, string[]> }[] = [];
  const refuse = (n: number, why: string): never => {
    throw new InputError(
      `${file} line ${n + 1}: ${why}; diffuse reads the form ComfyUI's example uses (sections of "key: folder" or "key: |" ` +
        "followed by one folder per line), so write the file in that form or pass the folders with --models-dir",
    );
  };
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]!);
    if (!line.trim()) continue;
    const indent = line.length - line.trimStart().length;
    if (/^\s*(-\s|[[{&*!|>%@`])/.test(line) || line.trim() === "-")
      refuse(i, "a YAML list, flow collection, anchor, tag or directive");
    const m = /^(\s*)([^:\s][^:]*?)\s*:(?:\s+(.*))?$/.exec(line);
    if (!m) refuse(i, "not a `key: value` line");
    const key = m![2]!.trim();
    const value = (m![3] ?? "").trim();
    if (indent === 0) {
      if (value) refuse(i, `a top-level key with a value ("${key}"); top-level keys name sections`);
      raw.push({ name: key, entries: new Map() });
      continue;
    }
    const section = raw[raw.length - 1];
    if (!section) refuse(i, "an indented line before any section");
    if (value === "|" || value === "|-" || value === "|+") {
      const block: string[] = [];
      while (i + 1 < lines.length) {
        const next = lines[i + 1]!;
        const nextIndent = next.length - next.trimStart().length;
        if (next.trim() && nextIndent <= indent) break;
        i++;
        if (next.trim()) block.push(next.trim());
      }
      section!.entries.set(key, block);
    } else if (value.startsWith(">")) {
      refuse(i, "a folded block (>)");
    } else if (/^[[{&*!]/.test(value)) {
      refuse(i, "a flow collection, anchor, alias or tag as a value");
    } else {
      section!.entries.set(key, value ? [unquote(value)] : []);
    }
  }
  return raw.map(({ name, entries }) => {
    const base = expand(entries.get("base_path")?.[0] ?? "", dirname(file));
    const folders: Record<string, string[]> = {};
    for (const [key, values] of entries) {
      if (key === "base_path" || key === "is_default") continue;
      folders[key] = values.map((v) => expand(v, base));
    }
    return { name, basePath: base, folders };
  });
}

/** `~` is the home folder; a relative path is relative to `base` (the yaml's folder for base_path, base_path for the rest). */
function expand(p: string, base: string): string {
  const home = p === "~" || p.startsWith("~/") ? join(homedir(), p.slice(1)) : p;
  return isAbsolute(home) ? resolve(home) : resolve(base, home);
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}

function unquote(s: string): string {
  if (s.length >= 2 && ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))))
    return s.slice(1, -1);
  return s;
}
