import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { buildClipText, CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { textEncoderConfigFromTransformers, type TextEncoderConfig } from "../../src/configs/text-encoder.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("CLIP text encoder (sd15-tiny, diffusers folder)", () => {
  it("matches transformers' last hidden state and every layer's hidden state", async () => {
    const config = textEncoderConfigFromTransformers(
      JSON.parse(readFileSync(ref("models/sd15-tiny/text_encoder/config.json"), "utf8")),
    );
    const file = SafetensorsFile.open(ref("models/sd15-tiny/text_encoder/model.safetensors"));
    const g = buildClipText(config, new ScopedWeights(fileWeightSource(file)));
    const session = await Session.create(serializeGraph(g), { threads: 1 });
    const gold = golden("goldens/sd15-tiny/text_encoder.safetensors");
    const ids = gold.ints("text_encoder/input_ids");
    const out = await session.run({ [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [3, 77] } });
    const last = relErr(out[CLIP_TEXT_IO.lastHidden]!.data, gold.get("text_encoder/last_hidden_state"));
    const states = relErr(out[CLIP_TEXT_IO.hiddenStates]!.data, gold.get("text_encoder/hidden_states"));
    expect(last).toBeLessThan(1e-4);
    expect(states).toBeLessThan(1e-4);
    console.log(`text encoder rel err: last ${last.toExponential(2)}, hidden states ${states.toExponential(2)}`);
  });
});

function encoder(model: string, folder: string, overrides: Partial<TextEncoderConfig> = {}) {
  const config = {
    ...textEncoderConfigFromTransformers(
      JSON.parse(readFileSync(ref(`models/${model}/${folder}/config.json`), "utf8")),
    ),
    ...overrides,
  };
  const w = new ScopedWeights(
    fileWeightSource(SafetensorsFile.open(ref(`models/${model}/${folder}/model.safetensors`))),
  );
  return { config, graph: buildClipText(config, w) };
}

/** Rows of a [B, L, D] tensor at one position per sequence. */
function rowsAt(states: Float32Array, positions: number[], tokens: number, hidden: number): Float32Array {
  const out = new Float32Array(positions.length * hidden);
  positions.forEach((p, b) =>
    out.set(states.subarray((b * tokens + p) * hidden, (b * tokens + p + 1) * hidden), b * hidden),
  );
  return out;
}

describe.skipIf(!HAVE_REFERENCE)("CLIP text encoder pooling", () => {
  it("pools at the first eos_token_id when the config's eos_token_id is not the legacy 2", async () => {
    const gold = golden("goldens/sd2v-tiny/text_encoder.safetensors");
    const ids = gold.ints("text_encoder/input_ids");
    // A token of the long prompt that is not the largest id: argmax pooling and first-eos pooling pick different rows.
    const row = Array.from(ids.subarray(2 * 77, 3 * 77), Number);
    const token = row.find((t, i) => i > 0 && t < Math.max(...row))!;
    const { graph } = encoder("sd2v-tiny", "text_encoder", { eosTokenId: token });
    const session = await Session.create(serializeGraph(graph), { threads: 1 });
    const out = await session.run({ [CLIP_TEXT_IO.inputIds]: { data: ids, dims: [3, 77] } });
    const positions = [0, 1, 2].map((b) => {
      const seq = Array.from(ids.subarray(b * 77, (b + 1) * 77), Number);
      const first = seq.indexOf(token);
      // transformers: (ids == eos).int().argmax() -> 0 when the token is absent.
      return Math.max(first, 0);
    });
    expect(positions[2]).not.toBe(row.indexOf(Math.max(...row)));
    expect(
      relErr(out[CLIP_TEXT_IO.pooled]!.data, rowsAt(gold.get("text_encoder/last_hidden_state"), positions, 77, 40)),
    ).toBeLessThan(1e-5);
  });
});
