import { describe, expect, it } from "vitest";
import { moduleDeltas } from "../../src/weights/lora-delta.js";
import { mapLoraKeys, type LoraTargets } from "../../src/weights/lora-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { mulberry32 } from "../helpers/seeded-random.js";
import { encodeSafetensors, f32Bytes } from "./safetensors-writer.js";

const random = mulberry32(3);
const values = (n: number) => Float32Array.from({ length: n }, () => random() - 0.5);

function lora(tensors: Record<string, { shape: number[]; data: Float32Array }>): SafetensorsFile {
  const bytes = encodeSafetensors(
    Object.entries(tensors).map(([name, t]) => ({ name, dtype: "F32", shape: t.shape, data: f32Bytes(t.data) })),
  );
  return SafetensorsFile.fromBytes(bytes, "test.safetensors");
}

function deltas(file: SafetensorsFile, modules: Map<string, number[]>) {
  const targets: LoraTargets = { modules: new Map([["unet", modules]]) };
  const map = mapLoraKeys(file.keys(), targets);
  return map.modules.flatMap((m) => moduleDeltas(file, m, (_, key) => modules.get(key.replace(/\.weight$/, ""))));
}

describe("LoRA module deltas", () => {
  it("an inpainting UNet's 9-channel conv_in takes a 4-channel LoRA: the extra inputs' factor columns are zero", () => {
    const down = values(4 * 4 * 9);
    const file = lora({
      "lora_unet_conv_in.lora_down.weight": { shape: [4, 4, 3, 3], data: down },
      "lora_unet_conv_in.lora_up.weight": { shape: [16, 4, 1, 1], data: values(64) },
    });
    const [d] = deltas(file, new Map([["conv_in", [16, 9, 3, 3]]]));
    expect(d!.delta.kind).toBe("low-rank");
    if (d!.delta.kind !== "low-rank") return;
    expect(d!.delta.down).toHaveLength(4 * 9 * 9);
    for (let r = 0; r < 4; r++) {
      expect(Array.from(d!.delta.down.subarray(r * 81, r * 81 + 36))).toEqual(
        Array.from(down.subarray(r * 36, (r + 1) * 36)),
      );
      expect(d!.delta.down.subarray(r * 81 + 36, (r + 1) * 81).every((v) => v === 0)).toBe(true);
    }
    // Any other layer with too few inputs is a LoRA for another model.
    const other = lora({
      "lora_unet_conv_out.lora_down.weight": { shape: [4, 4, 3, 3], data: down },
      "lora_unet_conv_out.lora_up.weight": { shape: [16, 4, 1, 1], data: values(64) },
    });
    expect(() => deltas(other, new Map([["conv_out", [16, 9, 3, 3]]]))).toThrow(
      /does not fit the model's weight \[16,9,3,3\]/,
    );
  });

  it("LoCon's Tucker form (lora_mid) is the mid kernel over the 1x1 down factor, scaled by alpha / rank", () => {
    const [mid, down, up] = [values(4 * 4 * 9), values(4 * 6), values(8 * 4)];
    const file = lora({
      "lora_unet_x.lora_mid.weight": { shape: [4, 4, 3, 3], data: mid },
      "lora_unet_x.lora_down.weight": { shape: [4, 6, 1, 1], data: down },
      "lora_unet_x.lora_up.weight": { shape: [8, 4, 1, 1], data: up },
      "lora_unet_x.alpha": { shape: [], data: Float32Array.of(2) },
    });
    const [d] = deltas(file, new Map([["x", [8, 6, 3, 3]]]));
    if (d!.delta.kind !== "low-rank") throw new Error("expected low-rank");
    expect(d!.delta.scale).toBe(0.5);
    for (let a = 0; a < 4; a++)
      for (let i = 0; i < 6; i++)
        for (let s = 0; s < 9; s++) {
          let want = 0;
          for (let b = 0; b < 4; b++) want += mid[(a * 4 + b) * 9 + s]! * down[b * 6 + i]!;
          expect(d!.delta.down[(a * 6 + i) * 9 + s]).toBeCloseTo(want, 6);
        }
  });

  it("refuses what it cannot merge, naming the module: DoRA, Tucker LoHa, half a LoRA", () => {
    const pair = {
      "lora_unet_x.lora_down.weight": { shape: [4, 6], data: values(24) },
      "lora_unet_x.lora_up.weight": { shape: [8, 4], data: values(32) },
    };
    const x = new Map([["x", [8, 6]]]);
    expect(() => deltas(lora({ ...pair, "lora_unet_x.dora_scale": { shape: [1, 6], data: values(6) } }), x)).toThrow(
      /test\.safetensors: module "lora_unet_x" uses DoRA/,
    );
    expect(() =>
      deltas(
        lora({
          "lora_unet_x.hada_w1_a": { shape: [8, 4], data: values(32) },
          "lora_unet_x.hada_t1": { shape: [4, 4], data: values(16) },
        }),
        x,
      ),
    ).toThrow(/Tucker form/);
    expect(() => deltas(lora({ "lora_unet_x.lora_down.weight": pair["lora_unet_x.lora_down.weight"] }), x)).toThrow(
      /has a down factor but no up factor/,
    );
  });
});
