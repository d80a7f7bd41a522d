import { describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { AdapterFolder } from "../../src/pipeline/adapter-folder.js";
import { encodePrompts, type TextEncoderHandle } from "../../src/pipeline/conditioning.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { Networks } from "../../src/pipeline/networks.js";
import { TextualInversions } from "../../src/pipeline/textual-inversions.js";
import { encodePrompt } from "../../src/tokenizer/chunks.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { readEmbedding } from "../../src/weights/embedding-file.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";
import { pickle, str, torchZip } from "../weights/torch-writer.js";

/** A .pt that would run os.system if unpickled (read as data, it is refused naming the global). */
const EVIL_PT = torchZip(pickle(`cos\nsystem\n(${str("id")}tR`));

const ADAPTERS = "models/sd15-tiny-adapters";
const ENCODER = { part: "single" as const, width: 32, vocabSize: 1000 };

describe.skipIf(!HAVE_REFERENCE)("textual inversion on sd15-tiny matches diffusers' load_textual_inversion", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-ti-"));
  const gold = () => golden("goldens/sd15-tiny-ti/textual_inversion.safetensors");
  const PROMPTS = [
    "a photo of ti-a1111",
    "a <tiny-cat> sitting on a sofa",
    "<tiny-cat> in the style of ti-a1111, highly detailed",
    "a photo of a cat",
  ];
  // As the golden loaded them: the A1111 file under its file name, the diffusers file under its token.
  const given = [
    { source: ref(ADAPTERS, "ti-a1111.safetensors"), token: "ti-a1111" },
    { source: ref(ADAPTERS, "ti-diffusers.safetensors"), token: "<tiny-cat>" },
  ];
  const tokenizer = () => ClipTokenizer.load(ref("models/sd15-tiny/tokenizer"));
  const handle = async (embeddings: TextualInversions): Promise<TextEncoderHandle> => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const nets = await Networks.open(ckpt, { cacheDir, threads: 1 });
    const tok = await tokenizer();
    return {
      session: await nets.get("text_encoder"),
      tokenizer: tok,
      hiddenSize: 32,
      layers: 3,
      finalLayerNorm: {
        weight: ckpt.textEncoder.float32("text_model.final_layer_norm.weight"),
        bias: ckpt.textEncoder.float32("text_model.final_layer_norm.bias"),
        eps: 1e-5,
      },
      embeddings: embeddings.forEncoder(0, tok),
    };
  };

  it("trigger words become the embeddings' ids (ti-a1111 -> 1000, 1001; <tiny-cat> -> 1002) and their rows the file's vectors", async () => {
    const ti = new TextualInversions([ENCODER], given);
    const tok = await tokenizer();
    const e = ti.forEncoder(0, tok)!;
    const ids = gold().ints("input_ids");
    PROMPTS.forEach((p, i) => {
      expect(encodePrompt(tok, p, { embeddings: e.words }).ids).toEqual([
        Array.from(ids.subarray(i * 77, (i + 1) * 77), Number),
      ]);
    });
    expect(relErr(e.rows, gold().get("added_embedding_rows"))).toBe(0);
  });

  it("text encoder outputs for prompts with the trigger words match (rel err < 1e-4), the prompt without one the plain model's", async () => {
    const te = await handle(new TextualInversions([ENCODER], given));
    const want = gold().get("last_hidden_state");
    for (const [i, p] of PROMPTS.entries()) {
      const [c] = await encodePrompts(te, [p], 1);
      expect(relErr(c!.data, want.subarray(i * 77 * 32, (i + 1) * 77 * 32))).toBeLessThan(1e-4);
    }
  });

  it("from a folder, each file's name is its trigger word (A1111): ti-diffusers stands for <tiny-cat>'s vector", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-ti-folder-"));
    copyFileSync(ref(ADAPTERS, "ti-a1111.safetensors"), join(dir, "ti-a1111.safetensors"));
    copyFileSync(ref(ADAPTERS, "ti-diffusers.safetensors"), join(dir, "ti-diffusers.safetensors"));
    const te = await handle(new TextualInversions([ENCODER], [], new AdapterFolder(dir, "embedding")));
    const want = gold().get("last_hidden_state");
    const [c] = await encodePrompts(te, ["ti-diffusers in the style of ti-a1111, highly detailed"], 1);
    expect(relErr(c!.data, want.subarray(2 * 77 * 32, 3 * 77 * 32))).toBeLessThan(1e-4);
  });

  it("prompt weighting applies to the embedding's positions as to words", async () => {
    const ti = new TextualInversions([ENCODER], given);
    const tok = await tokenizer();
    const e = ti.forEncoder(0, tok)!;
    const enc = encodePrompt(tok, "a photo of (ti-a1111:1.5)", { embeddings: e.words });
    const at = enc.ids[0]!.indexOf(1000);
    expect(enc.ids[0]!.slice(at, at + 2)).toEqual([1000, 1001]);
    expect(enc.weights[0]!.slice(at, at + 2)).toEqual([1.5, 1.5]);
    expect(enc.embeddings).toEqual(["ti-a1111"]);
    const te = await handle(ti);
    const [plain, weighted] = await encodePrompts(te, ["a photo of ti-a1111", "a photo of (ti-a1111:1.5)"], 1);
    expect(relErr(weighted!.data, plain!.data)).toBeGreaterThan(1e-3);
  });

  it("an embedding is never split between two 75-token chunks", async () => {
    const ti = new TextualInversions([ENCODER], given);
    const tok = await tokenizer();
    const e = ti.forEncoder(0, tok)!;
    // 74 one-token words, then the 2-vector embedding: it does not fit the first chunk's last position.
    const enc = encodePrompt(tok, `${"a ".repeat(74)}ti-a1111`, { embeddings: e.words });
    expect(enc.ids).toHaveLength(2);
    expect(enc.ids[0]!.slice(1, 76).every((id) => id !== 1000 && id !== 1001)).toBe(true);
    expect(enc.ids[1]!.slice(1, 3)).toEqual([1000, 1001]);
  });

  it("a .pt embedding that imports a disallowed global is refused naming it; an SD2-width one is skipped, as A1111 lists it", () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-ti-bad-"));
    writeFileSync(join(dir, "old.pt"), EVIL_PT);
    expect(() => readEmbedding(join(dir, "old.pt"))).toThrow(
      /old\.pt: the pickle imports os\.system.*nothing was executed/,
    );
    const wide = { part: "single" as const, width: 1024, vocabSize: 1000 };
    const ti = new TextualInversions([wide], given);
    expect(ti.current().loaded).toEqual([]);
    expect(ti.current().skipped.map((e) => e.name)).toEqual(["ti-a1111", "<tiny-cat>"]);
  });

  it("a generation records the embeddings it used as A1111's TI hashes; naming a malicious pickled one in the folder is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-ti-gen-"));
    copyFileSync(ref(ADAPTERS, "ti-a1111.safetensors"), join(dir, "ti-a1111.safetensors"));
    writeFileSync(join(dir, "easynegative.pt"), EVIL_PT);
    const pipe = await loadPipeline(ref("models/sd15-tiny"), {
      cacheDir,
      threads: 1,
      safetyChecker: false,
      embeddingsDir: dir,
      loraDir: dir,
    });
    try {
      const base = { steps: 1, seed: 1, width: 64, height: 64, sampler: "Euler" };
      const r = await pipe.generate({ ...base, prompt: "a photo of ti-a1111", negativePrompt: "blurry" });
      expect(r.info).toMatch(
        new RegExp(`, TI hashes: "ti-a1111: ${readEmbedding(join(dir, "ti-a1111.safetensors")).sha256.slice(0, 12)}"`),
      );
      const plain = await pipe.generate({ ...base, prompt: "a photo of a cat" });
      expect(plain.info).not.toMatch(/TI hashes/);
      await expect(pipe.generate({ ...base, prompt: "a cat", negativePrompt: "easynegative" })).rejects.toThrow(
        /easynegative\.pt: the pickle imports os\.system/,
      );
    } finally {
      await pipe.close();
    }
  });
});
