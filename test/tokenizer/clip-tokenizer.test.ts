import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { HAVE_REFERENCE, SHARED, ref } from "../helpers/fixtures.js";

interface TokenizerCase {
  prompt: string;
  ids_no_padding: number[];
  ids_pad_eos_77: number[];
  ids_pad_bang_77: number[];
  tokens: string[];
  tiny1000_ids_pad_eos_77: number[];
}

const REAL_FOLDER = () => ref("goldens/tokenizer/clip-bpe-49408");
const OPENAI_GZ = () => join(SHARED, "data/clip/bpe_simple_vocab_16e6.txt.gz");

/** Read at collection time so that every prompt gets its own named test. */
function loadCases(): TokenizerCase[] {
  if (!HAVE_REFERENCE) return [];
  const file = JSON.parse(readFileSync(ref("goldens/tokenizer/clip_tokenizer_cases.json"), "utf8")) as {
    cases: TokenizerCase[];
  };
  return file.cases;
}

const CASES = loadCases();
const label = (c: TokenizerCase) => JSON.stringify(c.prompt.length > 40 ? c.prompt.slice(0, 40) + "…" : c.prompt);
const NAMED = CASES.map((c) => [label(c), c] as const);

describe.skipIf(!HAVE_REFERENCE)("CLIP tokenizer against transformers' CLIPTokenizer", () => {
  let real: ClipTokenizer;
  let realBang: ClipTokenizer;
  let fromGz: ClipTokenizer;
  let tiny: ClipTokenizer;

  beforeAll(async () => {
    real = await ClipTokenizer.load(REAL_FOLDER());
    realBang = await ClipTokenizer.load(REAL_FOLDER(), { padToken: "!" });
    fromGz = await ClipTokenizer.load(OPENAI_GZ());
    tiny = await ClipTokenizer.load(ref("models/sd15-tiny/tokenizer"));
  });

  it.each(NAMED)("gives the reference ids without padding for %s", (_, c) => {
    expect(real.encode(c.prompt, { padding: false, truncation: false })).toEqual(c.ids_no_padding);
  });

  it.each(NAMED)("pads with <|endoftext|> to 77 and keeps it last when truncating, for %s", (_, c) => {
    expect(real.encode(c.prompt)).toEqual(c.ids_pad_eos_77);
  });

  it.each(NAMED)('pads with "!" when that is the pad token, for %s', (_, c) => {
    expect(realBang.encode(c.prompt)).toEqual(c.ids_pad_bang_77);
  });

  it.each(NAMED)("splits %s into the reference token strings", (_, c) => {
    expect(["<|startoftext|>", ...real.tokenize(c.prompt), "<|endoftext|>"]).toEqual(c.tokens);
  });

  it.each(NAMED)("gives the reference ids under the tiny 1000-token vocabulary for %s", (_, c) => {
    expect(tiny.encode(c.prompt)).toEqual(c.tiny1000_ids_pad_eos_77);
  });

  it.each(NAMED)("gives the same ids from OpenAI's bpe_simple_vocab_16e6.txt.gz for %s", (_, c) => {
    expect(fromGz.encode(c.prompt, { padding: false, truncation: false })).toEqual(c.ids_no_padding);
    expect(fromGz.encode(c.prompt)).toEqual(c.ids_pad_eos_77);
  });

  it("builds every vocab.json entry with the same id from OpenAI's merges file", async () => {
    const vocab = JSON.parse(await readFile(join(REAL_FOLDER(), "vocab.json"), "utf8")) as Record<string, number>;
    expect(Object.keys(vocab)).toHaveLength(49408);
    const mismatches = Object.entries(vocab).filter(([token, id]) => fromGz.tokenToId(token) !== id);
    expect(mismatches).toEqual([]);
    expect([fromGz.bosId, fromGz.eosId, fromGz.padId]).toEqual([49406, 49407, 49407]);
  });

  it("takes the start, end and pad ids from the SD1 tokenizer folder", () => {
    expect([tiny.bosId, tiny.eosId, tiny.padId]).toEqual([998, 999, 999]);
  });

  it.each(["sd2v-tiny/tokenizer", "sdxl-tiny/tokenizer_2"])('reads "!" as the pad token from %s', async (folder) => {
    const bang = await ClipTokenizer.load(ref("models", folder));
    expect(bang.padId).toBe(0);
    for (const c of CASES.filter((c) => !c.prompt.includes("!"))) {
      // The eos-padded reference ends in a run of 999s: the first of them closes the prompt, the rest are padding.
      const eosPadded = c.tiny1000_ids_pad_eos_77;
      let end = eosPadded.length;
      while (end > 0 && eosPadded[end - 1] === 999) end--;
      const expected = [...eosPadded.slice(0, end + 1), ...new Array<number>(77 - end - 1).fill(0)];
      expect(bang.encode(c.prompt), c.prompt).toEqual(expected);
    }
  });

  it('keeps each "!" whole when "!" is the pad token, as transformers does with added tokens', async () => {
    const sd2 = await ClipTokenizer.load(ref("models/sd2v-tiny/tokenizer"));
    expect(sd2.tokenize("a horse!!!")).toEqual([...sd2.tokenize("a horse"), "!", "!", "!"]);
    expect(tiny.tokenize("a horse!!!")).toEqual([...tiny.tokenize("a horse"), "!!!</w>"]);
  });

  it("an OpenCLIP encoder's tokenizer from OpenAI's .gz (which names no pad token) pads with \"!\" (id 0) as open_clip does; a named pad token wins", async () => {
    const openClip = await ClipTokenizer.load(OPENAI_GZ(), { defaultPadToken: "!" });
    // (Prompts with "!" differ: transformers cuts a named pad token out of the prompt, open_clip does not.)
    for (const c of CASES.filter((c) => !c.prompt.includes("!")))
      expect(openClip.encode(c.prompt), c.prompt).toEqual(c.ids_pad_bang_77);
    // open_clip has no special "!": a run of them is one BPE token, as without the default.
    expect(openClip.tokenize("a horse!!!")).toEqual(fromGz.tokenize("a horse!!!"));
    expect((await ClipTokenizer.load(REAL_FOLDER(), { defaultPadToken: "!" })).padId).toBe(real.padId);
    expect(fromGz.padId).toBe(49407);
  });

  it("decodes ids back to the cleaned-up prompt text", () => {
    expect(real.decode(real.encode("A Photo of an ASTRONAUT riding a horse!!!"))).toBe(
      "a photo of an astronaut riding a horse !!!",
    );
    expect(real.decode(real.encode("café 日本語"))).toBe("café 日本語");
  });

  it("treats typographic variants the way ftfy does before tokenizing", () => {
    expect(real.encode("it’s a ﬁsh")).toEqual(real.encode("it's a fish"));
    expect(real.encode("ＬＯＵＤ　ＮＯＩＳＥＳ")).toEqual(real.encode("loud noises"));
    expect(real.encode("“quoted”")).toEqual(real.encode('"quoted"'));
  });
});

describe("loading a CLIP tokenizer", () => {
  it("names the folder, the files expected and --tokenizer when the files are missing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "diffuse-tokenizer-"));
    try {
      const error = await ClipTokenizer.load(dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      const message = (error as Error).message;
      for (const part of [dir, "vocab.json", "merges.txt", "bpe_simple_vocab_16e6.txt.gz", "--tokenizer PATH"]) {
        expect(message).toContain(part);
      }
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it("says the path does not exist when it does not", async () => {
    const missing = join(tmpdir(), "diffuse-no-such-tokenizer-folder");
    await expect(ClipTokenizer.load(missing)).rejects.toThrow(InputError);
    await expect(ClipTokenizer.load(missing)).rejects.toThrow(/does not exist.*--tokenizer PATH/);
  });
});
