import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiffuseError, InputError } from "../../src/errors.js";
import { PolicyRefusal, PromptPolicy } from "../../src/responsible/prompt-policy.js";

const RULES = [
  { term: "Jane Doe", reason: "no images of real private people" },
  { term: "art", reason: "a deliberately short term, to test word boundaries" },
  { regex: "\\bgore\\w*", reason: "no graphic violence" },
  { term: "nsfw", reason: "no explicit content", in: "both" },
  { regex: "^TOP SECRET", reason: "case-sensitive marker", caseSensitive: true },
];
const policy = PromptPolicy.parse(JSON.stringify(RULES), "rules.json");

describe("prompt policy", () => {
  it("matches a term as a whole word or phrase, ignoring case and spacing, and returns its reason", () => {
    const m = policy.checkPrompt("portrait of JANE   doe, oil painting");
    expect(m).toMatchObject({ ruleNumber: 1, reason: "no images of real private people", field: "prompt", matched: "JANE   doe" });
    expect(policy.checkPrompt("Art deco poster")?.ruleNumber).toBe(2);
    expect(policy.checkPrompt("a smart artist painting a party")).toBeUndefined(); // "art" inside words does not count
    expect(policy.checkPrompt("janedoe")).toBeUndefined();
  });

  it("matches a regular expression, ignoring case unless the rule says otherwise", () => {
    expect(policy.checkPrompt("a GOREFEST poster")).toMatchObject({ ruleNumber: 3, reason: "no graphic violence", matched: "GOREFEST" });
    expect(policy.checkPrompt("Pythagoreans debating")).toBeUndefined(); // the regex asks for \b before "gore"
    expect(policy.checkPrompt("TOP SECRET plans")?.ruleNumber).toBe(5);
    expect(policy.checkPrompt("top secret plans")).toBeUndefined();
  });

  it("lets a prompt that matches no rule pass", () => {
    expect(policy.checkPrompt("a lighthouse at dusk", "blurry, lowres")).toBeUndefined();
    expect(() => policy.enforce("a lighthouse at dusk")).not.toThrow();
  });

  it("reads the negative prompt only for rules that ask for it", () => {
    expect(policy.checkPrompt("a cat", "gore, Jane Doe")).toBeUndefined();
    expect(policy.checkPrompt("a cat", "lowres, NSFW")).toMatchObject({ ruleNumber: 4, field: "negative", matched: "NSFW" });
  });

  it("reports the first matching rule in file order", () => {
    expect(policy.checkPrompt("nsfw gore art of jane doe")?.ruleNumber).toBe(1);
  });

  it("refuses with a typed PolicyRefusal carrying the reason, exit code 2", () => {
    let error: unknown;
    try {
      policy.enforce("gore everywhere");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PolicyRefusal);
    expect(error).toBeInstanceOf(DiffuseError);
    const refusal = error as PolicyRefusal;
    expect(refusal.exitCode).toBe(2);
    expect(refusal.reason).toBe("no graphic violence");
    expect(refusal.message).toBe('prompt refused by the prompt policy (rule 3, regex "\\\\bgore\\\\w*"): no graphic violence');
  });

  it("loads rules from a file, also as {rules: [...]}", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-policy-"));
    const path = join(dir, "policy.json");
    writeFileSync(path, JSON.stringify({ rules: [{ term: "forbidden", reason: "because" }] }));
    const loaded = await PromptPolicy.load(path);
    expect(loaded.size).toBe(1);
    expect(loaded.checkPrompt("a Forbidden city")?.reason).toBe("because");
    await expect(PromptPolicy.load(join(dir, "missing.json"))).rejects.toThrow(/cannot read the prompt policy .*missing\.json/);
  });

  it("rejects a bad regular expression at load with an error naming the rule", () => {
    const rules = JSON.stringify([{ term: "ok", reason: "fine" }, { regex: "(unclosed", reason: "broken" }]);
    expect(() => PromptPolicy.parse(rules, "policy.json")).toThrow(InputError);
    expect(() => PromptPolicy.parse(rules, "policy.json")).toThrow(/^policy\.json, rule 2 has an invalid regex "\(unclosed" \(.+\)/);
  });

  it("rejects malformed rules files with errors that say how to fix them", () => {
    const bad = (json: string) => () => PromptPolicy.parse(json, "p.json");
    expect(bad("{not json")).toThrow(/p\.json is not valid JSON/);
    expect(bad('{"term": "x"}')).toThrow(/should hold a JSON list of rules/);
    expect(bad('[{"term": "x"}]')).toThrow(/rule 1 needs a "reason"/);
    expect(bad('[{"term": "x", "regex": "y", "reason": "r"}]')).toThrow(/rule 1 needs exactly one of "term" and "regex"/);
    expect(bad('[{"reason": "r"}]')).toThrow(/exactly one of "term" and "regex"/);
    expect(bad('[{"trem": "x", "reason": "r"}]')).toThrow(/unknown key "trem"/);
    expect(bad('[{"term": "x", "reason": "r", "in": "title"}]')).toThrow(/use "prompt", "negative" or "both"/);
    expect(bad('[{"regex": "a*", "reason": "r"}]')).toThrow(/matches empty text, so it would refuse every prompt/);
    expect(bad('[{"term": "  ", "reason": "r"}]')).toThrow(/empty "term"/);
  });
});
