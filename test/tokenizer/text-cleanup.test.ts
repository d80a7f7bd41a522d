import { describe, expect, it } from "vitest";
import { htmlUnescape } from "../../src/tokenizer/html-unescape.js";
import { cleanPromptText, collapseWhitespace, fixText } from "../../src/tokenizer/text-cleanup.js";

describe("prompt clean-up before CLIP tokenization", () => {
  it("collapses every run of Python whitespace to one space and strips the ends", () => {
    expect(collapseWhitespace("  a\t\tb\n\nc\u3000d\x1ce\u0085f  ")).toBe("a b c d e f");
    // U+FEFF is whitespace to JavaScript but not to Python; ftfy removes it instead.
    expect(collapseWhitespace("a\ufeffb")).toBe("a\ufeffb");
  });

  it("lower-cases after unescaping and collapsing", () => {
    expect(cleanPromptText("  Tom &AMP; JERRY  ")).toBe("tom & jerry");
  });

  it("unescapes HTML twice, as the reference does", () => {
    expect(cleanPromptText("a &amp;lt;b&amp;gt;")).toBe("a <b>");
  });

  it("applies ftfy's deterministic fixes", () => {
    expect(fixText("ﬂuﬃeﬆ")).toBe("fluffiest");
    expect(fixText("ＬＯＵＤ　ＮＯＩＳＥＳ")).toBe("LOUD NOISES");
    expect(fixText("it’s “quoted”")).toBe('it\'s "quoted"');
    expect(fixText("\x1b[36;44mcolour\x1b[0m")).toBe("colour");
    expect(fixText("a\u200b\ufeffb\x00c")).toBe("a\u200bbc");
    expect(fixText("\x80 5")).toBe("€ 5");
    expect(fixText("e\u0301")).toBe("\u00e9");
    expect(fixText("a\r\nb\u2028c")).toBe("a\nb\nc");
  });
});

describe("HTML unescaping like Python's html.unescape", () => {
  it("decodes named references with and without the semicolon where HTML allows", () => {
    expect(htmlUnescape("&amp; &lt; &gt; &quot; &apos; &eacute; &copy &hellip;")).toBe("& < > \" ' é © …");
  });

  it("reads a legacy name that prefixes a longer run", () => {
    expect(htmlUnescape("&ampxyz &notit;")).toBe("&xyz ¬it;");
  });

  it("leaves unknown names as written", () => {
    expect(htmlUnescape("&bogus; &hellip")).toBe("&bogus; &hellip");
  });

  it("decodes numeric references with HTML5's replacements", () => {
    expect(htmlUnescape("&#39;&#x27;&#X41;&#65")).toBe("''AA");
    expect(htmlUnescape("&#128;&#x93;")).toBe("€“");
    expect(htmlUnescape("&#0;&#xD800;&#x110000;")).toBe("\ufffd\ufffd\ufffd");
    expect(htmlUnescape("a&#1;b&#xFFFF;c")).toBe("abc");
    expect(htmlUnescape("&#x1F431;")).toBe("🐱");
  });
});
