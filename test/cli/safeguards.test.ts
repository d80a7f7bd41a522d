import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseInfotext } from "../../src/image/infotext.js";
import { readPngText } from "../../src/image/png-text.js";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

const env = {
  DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-safeguards-cache-")),
  XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "diffuse-config-")),
};
const infotextOf = (file: string) =>
  parseInfotext(readPngText(readFileSync(file)).find((c) => c.keyword === "parameters")!.text);

describe.skipIf(!HAVE_REFERENCE)("safeguards on generate (sd15-tiny at 128 px)", () => {
  const model = ref("models/sd15-tiny");
  const dir = mkdtempSync(join(tmpdir(), "diffuse-safeguards-"));
  const base = ["--model", model, "-W", "128", "-H", "128", "--steps", "3", "--seed", "5"];

  it("by default: robust watermark found by diffuse detect, C2PA credentials verified, missing safety checker stated", async () => {
    const out = join(dir, "default.png");
    expect((await runCli(["generate", "a red circle", ...base, "-o", out], { env })).code).toBe(0);
    // The image's readers, side by side.
    const [detect, verify] = await Promise.all([
      runCli(["detect", out, "--json"], { env }),
      runCli(["verify", out], { env }),
    ]);
    expect(detect.code).toBe(0);
    expect(JSON.parse(detect.stdout)).toMatchObject({
      verdict: "robust",
      robust: { found: true, payload: { generator: 0x6466 } },
    });
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain("trainedAlgorithmicMedia");
    expect(infotextOf(out).extra).toMatchObject({ "Safety checker": "absent" });
  });

  it("each safeguard turned off is written into the infotext, and nothing is embedded", async () => {
    const out = join(dir, "off.png");
    expect(
      (
        await runCli(
          ["generate", "a red circle", ...base, "--no-watermark", "--no-provenance", "--no-safety-check", "-o", out],
          { env },
        )
      ).code,
    ).toBe(0);
    expect(infotextOf(out).extra).toMatchObject({ Watermark: "off", Provenance: "off", "Safety checker": "off" });
    const [detect, verify] = await Promise.all([
      runCli(["detect", out, "--json"], { env }),
      runCli(["verify", out], { env }),
    ]);
    expect(JSON.parse(detect.stdout).verdict).toBe("none");
    expect(verify.code).toBe(2);
  });

  it("a prompt matching a policy rule is refused with its reason, exit code 2 and no file", async () => {
    const rules = join(dir, "rules.json");
    writeFileSync(rules, JSON.stringify([{ term: "forbidden thing", reason: "not allowed on this machine" }]));
    const out = join(dir, "refused.png");
    const r = await runCli(["generate", "a Forbidden Thing at dusk", ...base, "--policy", rules, "-o", out], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not allowed on this machine/);
    expect(existsSync(out)).toBe(false);
  });

  it("a refused word spelled as the tokenizer reads it (entities, full width, control characters) is refused too", async () => {
    const rules = join(dir, "nudity.json");
    writeFileSync(rules, JSON.stringify([{ term: "nude", reason: "no nudity here" }]));
    const out = join(dir, "spelled.png");
    // Each spelling in its own process, side by side.
    const prompts = ["a n&#117;de person", "a &amp;#x6e;ude person", "a ｎｕ\u0007ｄｅ person"];
    const runs = await Promise.all(
      prompts.map((prompt) => runCli(["generate", prompt, ...base, "--policy", rules, "-o", out], { env })),
    );
    for (const [i, r] of runs.entries()) {
      expect([prompts[i], r.code, r.stderr]).toEqual([prompts[i], 2, expect.stringMatching(/no nudity here/)]);
      expect(existsSync(out)).toBe(false);
    }
  });
});
