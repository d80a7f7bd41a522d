import { InputError } from "../errors.js";
import { CATALOGUE, catalogueEntry, type CatalogueEntry } from "./catalogue.js";

/** What `diffuse pull` was asked for: a catalogue name, or a repository with an optional revision and file. */
export interface ModelRef {
  readonly repo: string;
  readonly revision: string;
  /** One file of the repository (`:FILE`); absent: the files the model needs. */
  readonly file?: string;
  /** The catalogue entry when a short name was given. */
  readonly entry?: CatalogueEntry;
}

export const DEFAULT_REVISION = "main";

// The Hub's rule for repository names: letters, digits, "-", "_", "."; not starting or ending with "-" or ".".
const REPO = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)$/;

/** Parses `NAME` or `OWNER/REPO[@REVISION][:FILE]`. */
export function parseModelRef(spec: string): ModelRef {
  const text = spec.trim();
  const entry = catalogueEntry(text);
  if (entry) return { repo: entry.repo, revision: entry.revision ?? DEFAULT_REVISION, entry };
  const colon = text.indexOf(":");
  const head = colon < 0 ? text : text.slice(0, colon);
  const file = colon < 0 ? undefined : text.slice(colon + 1);
  const at = head.indexOf("@");
  const repo = at < 0 ? head : head.slice(0, at);
  const revision = at < 0 ? DEFAULT_REVISION : head.slice(at + 1);
  if (!REPO.test(repo) || repo.includes("--") || /[-.]$|[-.]\//.test(repo)) {
    throw new InputError(
      `"${spec}" is neither a catalogue name (${CATALOGUE.map((e) => e.name).join(", ")}; see diffuse pull --list) ` +
        "nor a Hugging Face repository written OWNER/REPO[@REVISION][:FILE]",
    );
  }
  if (!revision || /\s|\.\./.test(revision))
    throw new InputError(`"${spec}": the revision after @ must be a branch, tag or commit hash`);
  if (file !== undefined) checkRelativeFile(file, spec);
  return { repo, revision, ...(file !== undefined ? { file } : {}) };
}

/** A file path inside a repository: relative, no "..", nothing that would leave the snapshot folder. */
export function checkRelativeFile(file: string, context: string): void {
  const parts = file.split("/");
  if (!file || file.startsWith("/") || file.includes("\\") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new InputError(
      `"${context}": the file after ":" must be a path inside the repository, like unet/config.json or model.safetensors`,
    );
  }
}
