import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { DataType } from "../../src/onnx/graph.js";
import { Networks, type NetworkName } from "../../src/pipeline/networks.js";
import type { Precision } from "../../src/models/precision.js";
import { storedForms } from "../helpers/cache-entry.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("precision int8: the text encoders' weights stored as int8", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-int8-text-"));
  const text = () => golden("goldens/sd15-tiny/text_encoder.safetensors");

  /** sd15-tiny's text encoder at a precision, on the golden's three prompts. */
  const encode = async (precision: Precision) => {
    const nets = await Networks.open(openCheckpoint(ref("models/sd15-tiny")), { cacheDir, threads: 1, precision });
    const out = await (await nets.get("text_encoder")).run({
      [CLIP_TEXT_IO.inputIds]: { data: text().ints("text_encoder/input_ids"), dims: [3, 77] },
      [CLIP_TEXT_IO.extraTokens]: { data: new Float32Array(32), dims: [1, 32] },
    });
    await nets.release();
    return out;
  };
  const entry = (network: NetworkName, precision: Precision) => {
    const re = new RegExp(`^[0-9a-f]{24}-${precision === "int8" ? "int8-" : ""}${network}-[0-9a-f]{20}$`);
    const found = readdirSync(cacheDir).filter((e) => re.test(e));
    expect(found).toHaveLength(1);
    return join(cacheDir, found[0]!);
  };

  it("stores the linear weights and the token embedding as int8, and conditions within 2% of fp32", async () => {
    // fp32 first: its load leaves a graph-key memo (graph-key-memo.ts) that the int8 load must not take.
    const f = await encode("fp32");
    const q = await encode("int8");
    const stored = storedForms(entry("text_encoder", "int8"));
    const int8 = [...stored].filter(([, s]) => s.format.startsWith("i8-")).map(([name]) => name);
    // 3 layers of q, k, fc1, fc2 (per column), and the token table (per row); all fp32 in the graph.
    expect(int8).toHaveLength(3 * 4 + 1);
    expect(stored.get("text_model.embeddings.token_embedding.weight")!.format).toBe("i8-rows");
    expect(stored.get("text_model.encoder.layers.2.mlp.fc2.weight")!.format).toBe("i8-cols");
    expect(new Set([...stored.values()].map((s) => s.dataType))).not.toContain(DataType.INT8);
    // Attention's value path (models/precision.ts) and the small tensors (biases, norms, positions) are not int8.
    const notInt8 = (name: string) => expect(stored.get(name)!.format).not.toMatch(/^i8-/);
    notInt8("text_model.encoder.layers.0.self_attn.v_proj.weight");
    notInt8("text_model.encoder.layers.0.self_attn.out_proj.weight");
    notInt8("text_model.embeddings.position_embedding.weight");

    // fp32 is as it was: the reference's output, and an entry of its own without an int8 tensor.
    expect(relErr(f[CLIP_TEXT_IO.lastHidden]!.data, text().get("text_encoder/last_hidden_state"))).toBeLessThan(1e-4);
    expect([...storedForms(entry("text_encoder", "fp32")).values()].map((s) => s.format)).not.toContain("i8-cols");

    const error = relErr(q[CLIP_TEXT_IO.lastHidden]!.data, f[CLIP_TEXT_IO.lastHidden]!.data);
    // Measured 1.05%: the tiny encoder's 32-wide rows quantize more coarsely than a real one's (SD1.5's: 0.70%).
    expect(error).toBeLessThan(0.02);
    expect(error).toBeGreaterThan(0); // the int8 weights were used
  });
});
