import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { buildClipText, CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { textEncoderConfigFromTransformers } from "../../src/configs/text-encoder.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("CLIP text encoder (sd15-tiny, diffusers folder)", () => {
  it("matches transformers' last hidden state and every layer's hidden state", async () => {
    const config = textEncoderConfigFromTransformers(JSON.parse(readFileSync(ref("models/sd15-tiny/text_encoder/config.json"), "utf8")));
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
