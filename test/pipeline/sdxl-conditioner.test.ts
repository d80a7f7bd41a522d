import { beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { UNET_IO } from "../../src/models/unet.js";
import { Networks } from "../../src/pipeline/networks.js";
import { AESTHETIC_SCORE, SdxlConditioner, type SdxlEncoder } from "../../src/pipeline/sdxl-conditioner.js";
import type { ConditioningRequest, UNetCondition } from "../../src/pipeline/unet-condition.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import type { Checkpoint } from "../../src/weights/checkpoint.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";
import { PROMPT } from "../helpers/pipeline-parity.js";

const L = 77;

describe.skipIf(!HAVE_REFERENCE)("SDXL conditioning (sdxl-tiny against transformers' encoder outputs)", () => {
  let ckpt: Checkpoint;
  let networks: Networks;
  let encoders: SdxlEncoder[];
  const te = () => golden("goldens/sdxl-tiny/text_encoder.safetensors");
  // The golden's prompts: 0 = "", 1 = PROMPT. hidden_states is [layers + 1 = 4, 3 prompts, 77, H]; [-2] is index 2.
  const penultimate = (encoder: string, hidden: number, prompt: number) =>
    te()
      .get(`${encoder}/hidden_states`)
      .subarray((2 * 3 + prompt) * L * hidden, (2 * 3 + prompt + 1) * L * hidden);
  const pooled = (prompt: number) =>
    te()
      .get("text_encoder_2/text_embeds")
      .subarray(prompt * 24, (prompt + 1) * 24);
  /** [te1 state of prompt a | te2 state of prompt b] per token: 32 + 40 = 72 features. */
  const concat = (a: number, b: number) => {
    const out = new Float32Array(L * 72);
    const x = penultimate("text_encoder", 32, a),
      y = penultimate("text_encoder_2", 40, b);
    for (let t = 0; t < L; t++) {
      out.set(x.subarray(t * 32, (t + 1) * 32), t * 72);
      out.set(y.subarray(t * 40, (t + 1) * 40), t * 72 + 32);
    }
    return out;
  };
  const request = (r: Partial<ConditioningRequest>): ConditioningRequest => ({
    prompt: PROMPT,
    negativePrompt: "",
    guided: true,
    clipSkip: 1,
    width: 64,
    height: 48,
    ...r,
  });
  const get = (c: UNetCondition, name: string) => c.get(name)!;

  beforeAll(async () => {
    ckpt = openCheckpoint(ref("models/sdxl-tiny"));
    networks = await Networks.open(ckpt, { cacheDir: mkdtempSync(join(tmpdir(), "diffuse-sdxl-cond-")), threads: 1 });
    const tokenizers = [
      await ClipTokenizer.load(ref("models/sdxl-tiny/tokenizer")),
      await ClipTokenizer.load(ref("models/sdxl-tiny/tokenizer_2")),
    ];
    encoders = [
      {
        network: "text_encoder",
        tokenizer: tokenizers[0]!,
        config: ckpt.config.textEncoder,
        weights: ckpt.textEncoder,
        prompts: "first",
      },
      {
        network: "text_encoder_2",
        tokenizer: tokenizers[1]!,
        config: ckpt.config.textEncoder2!,
        weights: ckpt.textEncoder2!,
        prompts: "second",
      },
    ];
  });

  it("both encoders' hidden_states[-2] (no final norm) side by side, text_encoder_2's text_embeds, time ids (size, crop 0,0, size); an empty negative is zeros", async () => {
    const c = await new SdxlConditioner(networks, encoders, { family: "sdxl", forceZerosForEmptyPrompt: true }).encode(
      request({}),
    );
    expect(get(c.cond, UNET_IO.encoderHiddenStates).dims).toEqual([77, 72]);
    expect(relErr(get(c.cond, UNET_IO.encoderHiddenStates).data, concat(1, 1))).toBeLessThan(1e-5);
    // The same as the pipeline golden's conditional half.
    expect(
      relErr(
        get(c.cond, UNET_IO.encoderHiddenStates).data,
        golden("goldens/sdxl-tiny/txt2img.safetensors")
          .get("encoder_hidden_states")
          .subarray(L * 72),
      ),
    ).toBeLessThan(1e-5);
    expect(relErr(get(c.cond, UNET_IO.textEmbeds).data, pooled(1))).toBeLessThan(1e-5);
    expect([...get(c.cond, UNET_IO.timeIds).data]).toEqual([48, 64, 0, 0, 48, 64]);
    expect([...get(c.uncond, UNET_IO.timeIds).data]).toEqual([48, 64, 0, 0, 48, 64]);
    expect(get(c.uncond, UNET_IO.encoderHiddenStates).data.every((v) => v === 0)).toBe(true);
    expect(get(c.uncond, UNET_IO.encoderHiddenStates).dims).toEqual([77, 72]);
    expect(get(c.uncond, UNET_IO.textEmbeds).data.every((v) => v === 0)).toBe(true);
    expect(get(c.uncond, UNET_IO.textEmbeds).dims).toEqual([24]);
  });

  it("prompt_2 goes to the second encoder alone, and the pooled embeds follow it", async () => {
    const c = await new SdxlConditioner(networks, encoders, { family: "sdxl", forceZerosForEmptyPrompt: true }).encode(
      request({ prompt2: "" }),
    );
    expect(relErr(get(c.cond, UNET_IO.encoderHiddenStates).data, concat(1, 0))).toBeLessThan(1e-5);
    expect(relErr(get(c.cond, UNET_IO.textEmbeds).data, pooled(0))).toBeLessThan(1e-5);
  });

  it("without force_zeros_for_empty_prompt (or with a second negative prompt) the empty negative is encoded like any prompt", async () => {
    const plain = await new SdxlConditioner(networks, encoders, {
      family: "sdxl",
      forceZerosForEmptyPrompt: false,
    }).encode(request({}));
    expect(relErr(get(plain.uncond, UNET_IO.encoderHiddenStates).data, concat(0, 0))).toBeLessThan(1e-5);
    expect(relErr(get(plain.uncond, UNET_IO.textEmbeds).data, pooled(0))).toBeLessThan(1e-5);
    const second = await new SdxlConditioner(networks, encoders, {
      family: "sdxl",
      forceZerosForEmptyPrompt: true,
    }).encode(request({ negativePrompt2: PROMPT }));
    expect(relErr(get(second.uncond, UNET_IO.encoderHiddenStates).data, concat(0, 1))).toBeLessThan(1e-5);
    expect(relErr(get(second.uncond, UNET_IO.textEmbeds).data, pooled(1))).toBeLessThan(1e-5);
  });

  it("a long prompt on one encoder pads the other's to the same chunk count with empty chunks; pooled comes from the first chunk", async () => {
    const long = `${PROMPT}, ${Array.from({ length: 90 }, (_, i) => `word${i % 7}`).join(" ")}`;
    const c = await new SdxlConditioner(networks, encoders, { family: "sdxl", forceZerosForEmptyPrompt: true }).encode(
      request({ prompt: long, prompt2: PROMPT }),
    );
    const h = get(c.cond, UNET_IO.encoderHiddenStates);
    expect(h.dims[0]).toBeGreaterThan(77);
    expect(h.dims[0]! % 77).toBe(0);
    // The second encoder's first chunk is PROMPT's, its second the empty prompt's.
    const second = (chunk: number) => {
      const out = new Float32Array(L * 40);
      for (let t = 0; t < L; t++) out.set(h.data.subarray((chunk * L + t) * 72 + 32, (chunk * L + t + 1) * 72), t * 40);
      return out;
    };
    expect(relErr(second(0), penultimate("text_encoder_2", 40, 1))).toBeLessThan(1e-5);
    expect(relErr(second(1), penultimate("text_encoder_2", 40, 0))).toBeLessThan(1e-5);
    expect(relErr(get(c.cond, UNET_IO.textEmbeds).data, pooled(1))).toBeLessThan(1e-5);
    expect(get(c.uncond, UNET_IO.encoderHiddenStates).dims).toEqual(h.dims);
  });

  it("without guidance only the prompts are encoded: their conditions stand for both halves (no zeros, no padding to the negative's length)", async () => {
    const long = Array.from({ length: 90 }, (_, i) => `word${i % 7}`).join(" ");
    const c = await new SdxlConditioner(networks, encoders, { family: "sdxl", forceZerosForEmptyPrompt: true }).encode(
      request({ guided: false, negativePrompt2: long }),
    );
    expect(get(c.cond, UNET_IO.encoderHiddenStates).dims).toEqual([77, 72]);
    expect(relErr(get(c.cond, UNET_IO.encoderHiddenStates).data, concat(1, 1))).toBeLessThan(1e-5);
    expect(get(c.uncond, UNET_IO.encoderHiddenStates).data).toEqual(get(c.cond, UNET_IO.encoderHiddenStates).data);
  });

  it("clip skip does not change SDXL's conditioning (A1111 ignores it for SDXL)", async () => {
    const conditioner = new SdxlConditioner(networks, encoders, { family: "sdxl", forceZerosForEmptyPrompt: true });
    const [a, b] = [await conditioner.encode(request({})), await conditioner.encode(request({ clipSkip: 2 }))];
    expect(get(b.cond, UNET_IO.encoderHiddenStates).data).toEqual(get(a.cond, UNET_IO.encoderHiddenStates).data);
  });

  it("the refiner's conditioning: its one (bigG) encoder reads the prompt; time ids end in the aesthetic score, 6 for the prompt and 2.5 for the negative", async () => {
    const bigG: SdxlEncoder = { ...encoders[1]!, prompts: "first" };
    const c = await new SdxlConditioner(networks, [bigG], {
      family: "sdxl-refiner",
      forceZerosForEmptyPrompt: false,
    }).encode(request({ prompt2: "ignored", negativePrompt: "" }));
    expect(get(c.cond, UNET_IO.encoderHiddenStates).dims).toEqual([77, 40]);
    expect(relErr(get(c.cond, UNET_IO.encoderHiddenStates).data, penultimate("text_encoder_2", 40, 1))).toBeLessThan(
      1e-5,
    );
    expect(relErr(get(c.uncond, UNET_IO.encoderHiddenStates).data, penultimate("text_encoder_2", 40, 0))).toBeLessThan(
      1e-5,
    );
    expect(relErr(get(c.cond, UNET_IO.textEmbeds).data, pooled(1))).toBeLessThan(1e-5);
    expect([...get(c.cond, UNET_IO.timeIds).data]).toEqual([48, 64, 0, 0, AESTHETIC_SCORE.positive]);
    expect([...get(c.uncond, UNET_IO.timeIds).data]).toEqual([48, 64, 0, 0, AESTHETIC_SCORE.negative]);
    expect([AESTHETIC_SCORE.positive, AESTHETIC_SCORE.negative]).toEqual([6, 2.5]);
  });
});
