import { DiffuseError, InputError } from "../errors.js";
import { jsonTooDeep, MAX_JSON_DEPTH } from "../json-depth.js";
import { readRegularFile } from "../regular-file.js";
import { readAsTokenizer, readTermAsTokenizer, type TokenizerReading } from "./tokenizer-reading.js";

/**
 * An operator's prompt policy: a JSON list of rules, each a whole-word term or a regular expression with
 * the reason to show when it matches. A matching prompt is refused before any compute, so nothing is
 * generated for it.
 *
 * ```json
 * [
 *   { "term": "some name", "reason": "no images of real people" },
 *   { "regex": "\\bgore\\w*", "reason": "no graphic violence" },
 *   { "term": "nsfw", "reason": "...", "in": "both" }
 * ]
 * ```
 * Rules read the prompt only unless `"in"` says "negative" or "both": negative prompts routinely list what
 * a user wants to avoid ("nsfw, gore, watermark"), and refusing those would punish careful prompts.
 *
 * The policy judges what the model will see, which is not the characters typed: the tokenizer decodes HTML
 * entities (twice), folds full-width letters, removes control characters, BOMs and terminal escapes, drops
 * attention markup and extra-network tags (`<lora:name:0.8>`, which the pipeline applies and cuts out) and
 * lower-cases (see tokenizer-reading.ts); a regex rule still reads the prompt as written, tags included, so an
 * operator can refuse a LoRA by name. So:
 * - a term is matched on the prompt as the tokenizer reads it, as whole words in two senses: not inside a
 *   longer run of letters, digits or underscores of the cleaned text ("art" never refuses "smart"), and as
 *   the tokenizer's own words, its pre-tokens, which split letters from digits and underscores ("nude_1" gives
 *   the model the token "nude" exactly as "nude 1" does). A spelling that gives the model other words passes:
 *   "nu de", "(nu)de" (segments are tokenized apart), "nudes", "nu\u200bde" (the zero-width space stays);
 * - a regex is matched on the prompt as written (it was written against text people type) and on both forms
 *   the tokenizer reads; a match in any refuses. Case-insensitive regexes read the tokenizer's lower case,
 *   case-sensitive ones its text before lower-casing ("T&#79;P" reads "TOP").
 */

/** Which prompt text a rule reads. */
export type PolicyScope = "prompt" | "negative" | "both";

export interface PolicyRule {
  readonly term?: string;
  readonly regex?: string;
  readonly reason: string;
  /** Defaults to "prompt". */
  readonly in?: PolicyScope;
  /** Regex rules only: match case exactly (terms and regexes otherwise ignore case). */
  readonly caseSensitive?: boolean;
}

/** The first rule a prompt matched. */
export interface PolicyMatch {
  /** 1-based position of the rule in the file, as a person counts them. */
  readonly ruleNumber: number;
  readonly rule: PolicyRule;
  readonly reason: string;
  /** Which text matched. */
  readonly field: "prompt" | "negative";
  /** The matched text: as written in the prompt where the written text matches, else as the tokenizer reads it. */
  readonly matched: string;
  /** Whether `matched` is the prompt as written or as the tokenizer reads it ("n&#117;de" reads "nude"). */
  readonly form: "written" | "tokenized";
}

/** A prompt refused by the policy: the CLI exits 2, the server answers 422, both with the rule's reason. */
export class PolicyRefusal extends DiffuseError {
  constructor(readonly match: PolicyMatch) {
    super(
      `prompt refused by the prompt policy (rule ${match.ruleNumber}, ${describeRule(match.rule)}): ${match.reason}`,
    );
  }
  get reason(): string {
    return this.match.reason;
  }
}

interface CompiledRule {
  readonly rule: PolicyRule;
  readonly scope: PolicyScope;
  /** Regex rules: decide on the written text too. Terms: only say what the user wrote, when it matches there. */
  readonly written: RegExp;
  /** Matches TokenizerReading.text. */
  readonly read: RegExp;
  /** Matches TokenizerReading.words. */
  readonly words: RegExp;
  /**
   * Terms: the cleaned term and its words, which any match in the reading contains. Most rules match nothing,
   * and a substring search rules them out far faster than the regex with its lookarounds.
   */
  readonly term?: TokenizerReading;
  /** Reads the tokenizer's text before lower-casing (case-sensitive regexes). */
  readonly keepCase: boolean;
}

/** One prompt field in the forms the rules read, each computed once and only when a rule needs it. */
class PromptForms {
  private lower?: TokenizerReading;
  private cased?: TokenizerReading;
  constructor(readonly written: string) {}
  tokenized(keepCase: boolean): TokenizerReading {
    return keepCase
      ? (this.cased ??= readAsTokenizer(this.written, true))
      : (this.lower ??= readAsTokenizer(this.written));
  }
}

export class PromptPolicy {
  private constructor(private readonly rules: readonly CompiledRule[]) {}

  /** Parses and validates rules (the JSON text of a rules file); `name` is the file, for error messages. */
  static parse(json: string, name = "the prompt policy"): PromptPolicy {
    if (jsonTooDeep(json, MAX_JSON_DEPTH)) {
      throw new InputError(
        `${name} nests JSON more than ${MAX_JSON_DEPTH} levels deep; it should be a flat list like [{"term": "...", "reason": "..."}]`,
      );
    }
    let data: unknown;
    try {
      data = JSON.parse(json);
    } catch (e) {
      throw new InputError(
        `${name} is not valid JSON (${(e as Error).message}); it should be a list like [{"term": "...", "reason": "..."}]`,
      );
    }
    const list = Array.isArray(data) ? data : (data as { rules?: unknown } | null)?.rules;
    if (!Array.isArray(list)) {
      throw new InputError(
        `${name} should hold a JSON list of rules (or {"rules": [...]}), each {"term": "..."} or {"regex": "..."} with a "reason"`,
      );
    }
    return new PromptPolicy(list.map((r, i) => compileRule(r, i + 1, name)));
  }

  static async load(path: string): Promise<PromptPolicy> {
    // A regular file of sane size: a named pipe or a device given by mistake must not hang or fill memory.
    const text = readRegularFile(path, InputError, {
      hint: "pass the path of the prompt policy's JSON file",
      maxBytes: MAX_POLICY_BYTES,
    }).toString("utf8");
    return PromptPolicy.parse(text, path);
  }

  get size(): number {
    return this.rules.length;
  }

  /** The first rule, in file order, that the prompt (or, where a rule asks, the negative prompt) matches. */
  checkPrompt(prompt: string, negative = ""): PolicyMatch | undefined {
    const forms = { prompt: new PromptForms(prompt), negative: new PromptForms(negative) };
    for (const [i, c] of this.rules.entries()) {
      const fields: Array<"prompt" | "negative"> = [];
      if (c.scope !== "negative") fields.push("prompt");
      if (c.scope !== "prompt") fields.push("negative");
      for (const field of fields) {
        const found = matchRule(c, forms[field]);
        if (found) return { ruleNumber: i + 1, rule: c.rule, reason: c.rule.reason, field, ...found };
      }
    }
    return undefined;
  }

  /** Throws PolicyRefusal when a rule matches; call it before loading models or queueing work. */
  enforce(prompt: string, negative = ""): void {
    const match = this.checkPrompt(prompt, negative);
    if (match) throw new PolicyRefusal(match);
  }
}

function matchRule(c: CompiledRule, forms: PromptForms): Pick<PolicyMatch, "matched" | "form"> | undefined {
  if (!c.term) {
    const written = c.written.exec(forms.written);
    if (written) return { matched: written[0], form: "written" };
  }
  const reading = forms.tokenized(c.keepCase);
  const tokenized =
    (!c.term || reading.text.includes(c.term.text) ? c.read.exec(reading.text) : null) ??
    (!c.term || reading.words.includes(c.term.words) ? c.words.exec(reading.words) : null);
  if (!tokenized) return undefined;
  // A term refused for what the model reads is shown as the user wrote it where the written text has it.
  const written = c.term ? c.written.exec(forms.written) : null;
  return written ? { matched: written[0], form: "written" } : { matched: tokenized[0], form: "tokenized" };
}

/** Thousands of rules fit in a megabyte; 16 MiB is far beyond any real policy. */
const MAX_POLICY_BYTES = 16 * 2 ** 20;

const RULE_KEYS = new Set(["term", "regex", "reason", "in", "caseSensitive"]);
const SCOPES: readonly PolicyScope[] = ["prompt", "negative", "both"];

function compileRule(raw: unknown, n: number, name: string): CompiledRule {
  const where = `${name}, rule ${n}`;
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new InputError(
      `${where} is not an object; write it as {"term": "...", "reason": "..."} or {"regex": "...", "reason": "..."}`,
    );
  }
  const r = raw as Record<string, unknown>;
  const unknown = Object.keys(r).filter((k) => !RULE_KEYS.has(k));
  if (unknown.length) {
    throw new InputError(
      `${where} has unknown key ${unknown.map((k) => JSON.stringify(k)).join(", ")}; a rule has "term" or "regex", "reason", and optionally "in" and "caseSensitive"`,
    );
  }
  if ((r.term === undefined) === (r.regex === undefined)) {
    throw new InputError(`${where} needs exactly one of "term" and "regex"`);
  }
  if (typeof r.reason !== "string" || !r.reason.trim()) {
    throw new InputError(`${where} needs a "reason": the sentence shown to the user whose prompt it refuses`);
  }
  if (r.in !== undefined && !SCOPES.includes(r.in as PolicyScope)) {
    throw new InputError(`${where} has "in": ${JSON.stringify(r.in)}; use "prompt", "negative" or "both"`);
  }
  if (r.caseSensitive !== undefined && (typeof r.caseSensitive !== "boolean" || r.term !== undefined)) {
    throw new InputError(
      `${where}: "caseSensitive" is true or false, and only for "regex" rules (terms always ignore case)`,
    );
  }
  const rule: PolicyRule = { ...(r as object), reason: r.reason } as PolicyRule;
  const scope = (r.in as PolicyScope | undefined) ?? "prompt";
  if (r.term !== undefined) {
    if (typeof r.term !== "string" || !r.term.trim())
      throw new InputError(`${where} has an empty "term"; give a word or phrase`);
    const reading = readTermAsTokenizer(r.term);
    if (reading.text === "") {
      throw new InputError(
        `${where} has the term ${JSON.stringify(r.term)}, which is empty once cleaned as the tokenizer cleans prompts (control and invisible characters are removed); give a word or phrase`,
      );
    }
    return {
      rule,
      scope,
      term: reading,
      keepCase: false,
      written: termPattern(r.term),
      // Both readings are lower case already. Without the i flag the long s (U+017F) and the Kelvin sign do not
      // stand in for "s" and "k": the model reads them as other bytes.
      read: new RegExp(`(?<![\\p{L}\\p{N}_])${escapeRegExp(reading.text)}(?![\\p{L}\\p{N}_])`, "u"),
      words: new RegExp(`(?<![^ ])${escapeRegExp(reading.words)}(?![^ ])`, "u"),
    };
  }
  if (typeof r.regex !== "string" || r.regex === "")
    throw new InputError(`${where} has an empty "regex"; give a JavaScript regular expression`);
  let pattern: RegExp;
  try {
    pattern = new RegExp(r.regex, r.caseSensitive ? "u" : "iu");
  } catch (e) {
    throw new InputError(
      `${where} has an invalid regex ${JSON.stringify(r.regex)} (${(e as Error).message}); write it in JavaScript syntax (Unicode mode), and double each backslash inside JSON`,
    );
  }
  if (pattern.test("")) {
    throw new InputError(
      `${where}: the regex ${JSON.stringify(r.regex)} matches empty text, so it would refuse every prompt; make it require at least one character`,
    );
  }
  const keepCase = r.caseSensitive === true;
  return { rule, scope, keepCase, written: pattern, read: pattern, words: pattern };
}

/**
 * A term matches as a whole word or phrase, ignoring case: "art" must not refuse "smart" or "artist".
 * Boundaries are "not a letter, digit or underscore" in Unicode, since \b knows only ASCII, and runs of
 * spaces inside a phrase match any whitespace.
 */
function termPattern(term: string): RegExp {
  const body = term.trim().split(/\s+/).map(escapeRegExp).join("\\s+");
  return new RegExp(`(?<![\\p{L}\\p{N}_])${body}(?![\\p{L}\\p{N}_])`, "iu");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function describeRule(rule: PolicyRule): string {
  return rule.term !== undefined ? `term ${JSON.stringify(rule.term)}` : `regex ${JSON.stringify(rule.regex)}`;
}
