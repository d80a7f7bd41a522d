import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodePrompts, type TextEncoderHandle } from "../../src/pipeline/conditioning.js";
import { Networks } from "../../src/pipeline/networks.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("prompt conditioning (sd15-tiny)", () => {
  const setup = async (): Promise<TextEncoderHandle> => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const nets = await Networks.open(ckpt, { cacheDir: mkdtempSync(join(tmpdir(), "diffuse-cond-")), threads: 1 });
    return {
      session: await nets.get("text_encoder"),
      tokenizer: await ClipTokenizer.load(ref("models/sd15-tiny/tokenizer")),
      hiddenSize: 32,
      layers: 3,
      finalLayerNorm: {
        weight: ckpt.textEncoder.float32("text_model.final_layer_norm.weight"),
        bias: ckpt.textEncoder.float32("text_model.final_layer_norm.bias"),
        eps: 1e-5,
      },
    };
  };
  const prompt = "a photo of an astronaut riding a horse on mars";
  const gold = () => golden("goldens/sd15-tiny/text_encoder.safetensors");
  const slice = (a: Float32Array, i: number) => a.subarray(i * 77 * 32, (i + 1) * 77 * 32);

  it("clip skip 1 is transformers' last_hidden_state", async () => {
    const [c] = await encodePrompts(await setup(), [prompt], 1);
    expect(relErr(c!.data, slice(gold().get("text_encoder/last_hidden_state"), 1))).toBeLessThan(1e-4);
  });

  it("clip skip 2 is the final layer norm applied to hidden_states[-2], as A1111 and diffusers compute it", async () => {
    const te = await setup();
    const [c] = await encodePrompts(te, [prompt], 2);
    // hidden_states is [4, 3, 77, 32]: embeddings + 3 layers; [-2] is index 2, prompt 1.
    const h = gold()
      .get("text_encoder/hidden_states")
      .subarray((2 * 3 + 1) * 77 * 32, (2 * 3 + 2) * 77 * 32);
    const expected = new Float32Array(h.length);
    for (let t = 0; t < 77; t++) {
      const row = h.subarray(t * 32, (t + 1) * 32);
      const mean = row.reduce((a, b) => a + b, 0) / 32;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 32;
      for (let i = 0; i < 32; i++)
        expected[t * 32 + i] =
          ((row[i]! - mean) / Math.sqrt(variance + 1e-5)) * te.finalLayerNorm.weight[i]! + te.finalLayerNorm.bias[i]!;
    }
    expect(relErr(c!.data, expected)).toBeLessThan(1e-5);
    await expect(encodePrompts(te, [prompt], 4)).rejects.toThrow(/clip skip 4 is out of range.*1 .* to 3/);
  });

  it("(word:1.5) scales that word's embeddings and keeps the chunk's mean; long prompts pad the shorter one with empty chunks", async () => {
    const te = await setup();
    const [plain, weighted] = await encodePrompts(te, ["a red horse", "a (red:1.5) horse"]);
    const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(weighted!.data)).toBeCloseTo(mean(plain!.data), 5);
    // Token 2 ("red") is scaled by 1.5 before the mean is restored; the others only by the restoring factor.
    const factor = weighted!.data[32]! / plain!.data[32]!; // token 1 ("a"): restoring factor only
    expect(weighted!.data[2 * 32 + 5]! / plain!.data[2 * 32 + 5]!).toBeCloseTo(1.5 * factor, 4);
    const long = Array.from({ length: 100 }, (_, i) => `word${i % 10}`).join(" ");
    const [short, longC] = await encodePrompts(te, ["", long]);
    expect(longC!.tokens).toBeGreaterThan(77);
    expect(short!.tokens).toBe(longC!.tokens);
  });
});
