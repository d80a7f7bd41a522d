import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { DiffuseError, InputError } from "../errors.js";
import { mergeStyle } from "./style-merge.js";

/** A saved prompt style: text merged into a request's prompt and negative prompt, by name. */
export interface PromptStyle {
  name: string;
  prompt: string;
  negative_prompt: string;
}

export const PromptStyleList = z.array(
  z.object({
    name: z.string().trim().min(1, "a style needs a name").max(200),
    prompt: z.string().max(20_000).nullish(),
    negative_prompt: z.string().max(20_000).nullish(),
  }),
);

const HEADER = ["name", "prompt", "negative_prompt"] as const;

/**
 * The saved prompt styles of a server: `styles.csv` in its data folder, in AUTOMATIC1111's format (a header row
 * `name,prompt,negative_prompt`, then one style a row, fields quoted when they hold a comma, quote or line break,
 * quotes doubled), so the file can be copied from an A1111 installation and back. Read on every use, so an edit of
 * the file by hand counts at once; written whole to a temporary file and renamed, so a crash never leaves half.
 */
export class PromptStyles {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, "styles.csv");
  }

  list(): PromptStyle[] {
    if (!existsSync(this.path)) return [];
    const rows = parseCsv(readFileSync(this.path, "utf8").replace(/^\uFEFF/, ""), this.path);
    const header = (rows.shift() ?? []).map((h) => h.trim());
    const col = (name: string) => header.indexOf(name);
    if (col("name") < 0)
      throw new StylesFileError(
        `${this.path}: the first row must name the columns (name,prompt,negative_prompt), as A1111 writes it`,
      );
    return rows
      .filter((r) => (r[col("name")] ?? "").trim() !== "")
      .map((r) => ({
        name: r[col("name")]!.trim(),
        prompt: r[col("prompt")] ?? "",
        negative_prompt: r[col("negative_prompt")] ?? "",
      }));
  }

  /** Replaces every style with `styles`. */
  save(styles: readonly PromptStyle[]): void {
    const text = [HEADER, ...styles.map((s) => [s.name, s.prompt, s.negative_prompt])]
      .map((row) => `${row.map(csvField).join(",")}\r\n`)
      .join("");
    const partial = `${this.path}.partial`;
    writeFileSync(partial, text);
    renameSync(partial, this.path);
  }

  /**
   * The prompts with the named styles applied as A1111 applies them, in the order named: a style's text replaces
   * its `{prompt}` placeholder with the prompt so far, or is appended after ", ". An unknown name is an error that
   * lists the known ones (A1111 skips it silently).
   */
  apply(names: readonly string[], prompt: string, negative: string): { prompt: string; negative: string } {
    if (names.length === 0) return { prompt, negative };
    const all = this.list();
    for (const name of names) {
      const style = all.find((s) => s.name === name);
      if (!style) {
        const known = all.length ? all.map((s) => `"${s.name}"`).join(", ") : "none (GET /sdapi/v1/prompt-styles)";
        throw new InputError(`no style "${name}"; the saved styles are ${known}`);
      }
      prompt = mergeStyle(style.prompt, prompt);
      negative = mergeStyle(style.negative_prompt, negative);
    }
    return { prompt, negative };
  }
}

/** styles.csv cannot be read as A1111's CSV: the message names the file and what is wrong. */
export class StylesFileError extends DiffuseError {}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** RFC 4180 CSV as Python's csv module writes it: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string, path: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i++;
      continue;
    }
    if (c === '"' && field.trim() === "") {
      quoted = true;
      field = "";
    } else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      if (c === "\r" && text[i + 1] === "\n") i++;
    } else {
      field += c;
    }
    i++;
  }
  if (quoted) throw new StylesFileError(`${path}: a quoted field is not closed (a " is missing)`);
  if (field !== "" || row.length) rows.push([...row, field]);
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}
