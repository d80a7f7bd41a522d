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
    expect(m).toMatchObject({
      ruleNumber: 1,
      reason: "no images of real private people",
      field: "prompt",
      matched: "JANE   doe",
    });
    expect(policy.checkPrompt("Art deco poster")?.ruleNumber).toBe(2);
    expect(policy.checkPrompt("a smart artist painting a party")).toBeUndefined(); // "art" inside words does not count
    expect(policy.checkPrompt("janedoe")).toBeUndefined();
  });

  it("matches a regular expression, ignoring case unless the rule says otherwise", () => {
    expect(policy.checkPrompt("a GOREFEST poster")).toMatchObject({
      ruleNumber: 3,
      reason: "no graphic violence",
      matched: "GOREFEST",
    });
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
    expect(policy.checkPrompt("a cat", "lowres, NSFW")).toMatchObject({
      ruleNumber: 4,
      field: "negative",
      matched: "NSFW",
    });
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
    expect(refusal.message).toBe(
      'prompt refused by the prompt policy (rule 3, regex "\\\\bgore\\\\w*"): no graphic violence',
    );
  });

  it("loads rules from a file, also as {rules: [...]}", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-policy-"));
    const path = join(dir, "policy.json");
    writeFileSync(path, JSON.stringify({ rules: [{ term: "forbidden", reason: "because" }] }));
    const loaded = await PromptPolicy.load(path);
    expect(loaded.size).toBe(1);
    expect(loaded.checkPrompt("a Forbidden city")?.reason).toBe("because");
    await expect(PromptPolicy.load(join(dir, "missing.json"))).rejects.toThrow(
      /missing\.json: no such file; pass the path of the prompt policy/,
    );
  });

  it("rejects a bad regular expression at load with an error naming the rule", () => {
    const rules = JSON.stringify([
      { term: "ok", reason: "fine" },
      { regex: "(unclosed", reason: "broken" },
    ]);
    expect(() => PromptPolicy.parse(rules, "policy.json")).toThrow(InputError);
    expect(() => PromptPolicy.parse(rules, "policy.json")).toThrow(
      /^policy\.json, rule 2 has an invalid regex "\(unclosed" \(.+\)/,
    );
  });

  it("rejects malformed rules files with errors that say how to fix them", () => {
    const bad = (json: string) => () => PromptPolicy.parse(json, "p.json");
    expect(bad("{not json")).toThrow(/p\.json is not valid JSON/);
    expect(bad('{"term": "x"}')).toThrow(/should hold a JSON list of rules/);
    expect(bad('[{"term": "x"}]')).toThrow(/rule 1 needs a "reason"/);
    expect(bad('[{"term": "x", "regex": "y", "reason": "r"}]')).toThrow(
      /rule 1 needs exactly one of "term" and "regex"/,
    );
    expect(bad('[{"reason": "r"}]')).toThrow(/exactly one of "term" and "regex"/);
    expect(bad('[{"trem": "x", "reason": "r"}]')).toThrow(/unknown key "trem"/);
    expect(bad('[{"term": "x", "reason": "r", "in": "title"}]')).toThrow(/use "prompt", "negative" or "both"/);
    expect(bad('[{"regex": "a*", "reason": "r"}]')).toThrow(/matches empty text, so it would refuse every prompt/);
    expect(bad('[{"term": "  ", "reason": "r"}]')).toThrow(/empty "term"/);
  });
});

describe("prompt policy reads the prompt as the tokenizer does", () => {
  const NUDITY = PromptPolicy.parse(
    JSON.stringify([
      { term: "nude", reason: "no nudity" },
      { term: "jane doe", reason: "no images of real private people" },
      { regex: "\\bgore\\w*", reason: "no graphic violence" },
      { term: "nsfw", reason: "no explicit content", in: "both" },
      { regex: "^TOP SECRET", reason: "case-sensitive marker", caseSensitive: true },
      { term: "art", reason: "a deliberately short term, to test word boundaries" },
    ]),
    "rules.json",
  );

  it.each([
    ["a decimal entity", "a n&#117;de person"],
    ["a hex entity", "a &#x6e;ude person"],
    ["a double-escaped entity", "a &amp;#110;ude person"],
    ["full-width letters", "a ｎｕｄｅ person"],
    ["a NUL inside the word", "a nu\u0000de person"],
    ["a BEL inside the word", "a nu\u0007de person"],
    ["an ANSI escape inside the word (bracket escaped for the weighting parser)", "a nu\u001b\\[31mde person"],
    ["a byte order mark inside the word", "a nu\ufeffde person"],
    ["a byte order mark before the word", "a \ufeffn&#x75;de person"],
  ])("refuses a term spelled with %s: %j", (_, prompt) => {
    expect(NUDITY.checkPrompt(prompt)).toMatchObject({
      ruleNumber: 1,
      reason: "no nudity",
      field: "prompt",
      matched: "nude",
      form: "tokenized",
    });
  });

  it.each([
    ["empty round brackets", "a nu()de person"],
    ["empty square brackets", "a nu[]de person"],
    ["both halves weighted alike", "a (nu)(de) person"],
    ["both halves with the same explicit weight", "a (nu:1.3)(de:1.3) person"],
    ["a lone backslash, which the parser drops", "a nu\\de person"],
    ["markup inside an entity", "a n&#11()7;de person"],
  ])("refuses a word the weighting parser joins again, written with %s: %j", (_, prompt) => {
    expect(NUDITY.checkPrompt(prompt)).toMatchObject({ ruleNumber: 1, matched: "nude", form: "tokenized" });
  });

  it("refuses a word the tokenizer splits off digits or underscores, which gives the model the same word token", () => {
    expect(NUDITY.checkPrompt("a nude1girl")).toMatchObject({ ruleNumber: 1, matched: "nude", form: "tokenized" });
    expect(NUDITY.checkPrompt("a nude_art poster")).toMatchObject({
      ruleNumber: 1,
      matched: "nude",
      form: "tokenized",
    });
    expect(NUDITY.checkPrompt("a (jane:1.2) doe portrait")).toMatchObject({
      ruleNumber: 2,
      matched: "jane doe",
      form: "tokenized",
    });
    expect(NUDITY.checkPrompt("a j&#97;ne&nbsp;doe portrait")).toMatchObject({ ruleNumber: 2, matched: "jane doe" });
  });

  it("still reports the text as written when the written prompt matches", () => {
    expect(NUDITY.checkPrompt("a NUDE person")).toMatchObject({ ruleNumber: 1, matched: "NUDE", form: "written" });
  });

  it("lets pass what the tokenizer reads as other words, as a whole-word rule should", () => {
    for (const prompt of [
      "a nu de person",
      "a (nu)de person",
      "nu BREAK de",
      "nudes",
      "denude",
      "a nuance of grey",
      "a smart artist at a party",
      "sm&#97;rt",
      "ＳＭＡＲＴ ｐａｒｔｙ",
      "a nu\u200bde person",
      "a nu\u00adde person",
      "a nu\u2060de person",
      "a nu&#xfeff;de person",
      "a &amp;amp;#110;ude person",
      "a &#xff4e;ude person",
      "a nu\u001b[31mde person",
      "a portrait <lora:nude-style:1>",
    ]) {
      expect(NUDITY.checkPrompt(prompt), JSON.stringify(prompt)).toBeUndefined();
    }
  });

  it("runs regex rules on the text as the tokenizer reads it too, case-sensitive ones on its letters as written", () => {
    expect(NUDITY.checkPrompt("a g&#111;refest poster")).toMatchObject({
      ruleNumber: 3,
      matched: "gorefest",
      form: "tokenized",
    });
    expect(NUDITY.checkPrompt("T&#79;P SECRET plans")).toMatchObject({
      ruleNumber: 5,
      matched: "TOP SECRET",
      form: "tokenized",
    });
    expect(NUDITY.checkPrompt("ＴＯＰ SECRET plans")?.ruleNumber).toBe(5);
    expect(NUDITY.checkPrompt("t&#111;p secret plans")).toBeUndefined();
  });

  it("reads the negative prompt the same way, for the rules that read it", () => {
    expect(NUDITY.checkPrompt("a cat", "lowres, n&#115;fw")).toMatchObject({
      ruleNumber: 4,
      field: "negative",
      matched: "nsfw",
      form: "tokenized",
    });
    expect(NUDITY.checkPrompt("a cat", "n&#117;de, g&#111;re")).toBeUndefined();
  });

  it("judges a prompt whose weights do not parse instead of throwing (generation reports the weight)", () => {
    expect(NUDITY.checkPrompt("a (n&#117;de:1.2.3) person")).toMatchObject({ ruleNumber: 1, matched: "nude" });
  });

  it("refuses at load a term that the tokenizer's clean-up leaves empty", () => {
    expect(() => PromptPolicy.parse(JSON.stringify([{ term: "\u0007\u0000", reason: "r" }]), "p.json")).toThrow(
      /p\.json, rule 1 has the term "\\u0007\\u0000", which is empty once cleaned as the tokenizer cleans prompts/,
    );
  });
});
