import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { UNET_IO } from "../../src/models/unet.js";
import { Loras, loraModel } from "../../src/pipeline/loras.js";
import { Networks } from "../../src/pipeline/networks.js";
import { ldmPart, ldmUnetModulePaths, mapLdmNames } from "../../src/weights/ldm-keymap.js";
import { readLora } from "../../src/weights/lora-file.js";
import { mapLoraKeys, type LoraTargets } from "../../src/weights/lora-keymap.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";
import { encodeRaw } from "./safetensors-writer.js";

describe.skipIf(!HAVE_REFERENCE)("LoRA key map", () => {
  for (const [family, model] of [
    ["sd1", "sd15-tiny"],
    ["sd2", "sd2v-tiny"],
    ["sdxl", "sdxl-tiny"],
  ] as const) {
    it(`${model}: the LDM path of every diffusers UNet module is the one the single file stores it under`, () => {
      const file = SafetensorsFile.open(ref(`models/${model}.ldm.safetensors`));
      const part = ldmPart(family, "unet")!;
      const mapped = mapLdmNames(part, file.keys(), file.path).filter((m) => m.name.endsWith(".weight") && !m.view);
      const ckpt = openCheckpoint(ref(`models/${model}`));
      const inverse = ldmUnetModulePaths(
        ckpt.config.unet,
        mapped.map((m) => m.name.slice(0, -".weight".length)),
      );
      expect(mapped.length).toBeGreaterThan(50);
      for (const m of mapped)
        expect(inverse.get(m.name.slice(0, -".weight".length)), m.name).toBe(
          m.stored.slice(part.prefix.length, -".weight".length),
        );
      file.close();
      ckpt.close();
    });
  }

  const targets: LoraTargets = {
    modules: new Map([
      [
        "unet",
        new Map([
          ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", [16, 16]],
          ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", [16, 16]],
          ["down_blocks.0.attentions.0.proj_in", [16, 16, 1, 1]],
        ]),
      ],
      ["text_encoder", new Map([["text_model.encoder.layers.0.self_attn.q_proj", [32, 32]]])],
      ["text_encoder_2", new Map([["text_model.encoder.layers.0.self_attn.q_proj", [40, 40]]])],
    ]),
    ldmUnetPaths: new Map([
      ["down_blocks.0.attentions.0.proj_in", "input_blocks.1.1.proj_in"],
      [
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "input_blocks.1.1.transformer_blocks.0.attn1.to_q",
      ],
    ]),
  };

  it("groups each format's keys under the model's module and its role", () => {
    const cases: [string, string, string, string][] = [
      [
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
        "unet",
        "down_blocks.0.attentions.0.proj_in",
        "down",
      ],
      ["lora_unet_input_blocks_1_1_proj_in.lora_up.weight", "unet", "down_blocks.0.attentions.0.proj_in", "up"],
      [
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.alpha",
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "alpha",
      ],
      [
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "down",
      ],
      [
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.default.weight",
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "up",
      ],
      [
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight",
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
        "down",
      ],
      [
        "base_model.model.down_blocks.0.attentions.0.proj_in.lora_B.weight",
        "unet",
        "down_blocks.0.attentions.0.proj_in",
        "up",
      ],
      [
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
        "text_encoder",
        "text_model.encoder.layers.0.self_attn.q_proj",
        "down",
      ],
      [
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.hada_w1_a",
        "text_encoder",
        "text_model.encoder.layers.0.self_attn.q_proj",
        "hada_w1_a",
      ],
      [
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lokr_w2_b",
        "text_encoder_2",
        "text_model.encoder.layers.0.self_attn.q_proj",
        "lokr_w2_b",
      ],
      [
        "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight",
        "text_encoder_2",
        "text_model.encoder.layers.0.self_attn.q_proj",
        "up",
      ],
    ];
    for (const [key, network, module, role] of cases) {
      const { modules, unmatched } = mapLoraKeys([key], targets);
      expect(unmatched, key).toEqual([]);
      expect(
        modules.map((m) => ({ network: m.network, module: m.module, roles: [...m.tensors.keys()] })),
        key,
      ).toEqual([{ network, module, roles: [role] }]);
    }
  });

  it("reports, in file order, keys that name no module of the model or no role, and a second spelling of one tensor", () => {
    const keys = [
      "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight",
      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
      "lora_unet_down_blocks_0_attentions_0_proj_in.w_norm",
      "lycoris_something.lora_up.weight",
      "unet.down_blocks.0.attentions.0.proj_in.lora_A.weight",
    ];
    expect(mapLoraKeys(keys, targets).unmatched).toEqual([keys[0], keys[2], keys[3], keys[4]]);
  });

  it("a kohya LoRA written with LDM block names merges exactly as the one with diffusers names", async () => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const model = loraModel(ckpt);
    const source = SafetensorsFile.open(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"));
    const toLdm = new Map(
      [...model.targets.ldmUnetPaths!].map(([d, l]) => [
        `lora_unet_${d.replaceAll(".", "_")}`,
        `lora_unet_${l.replaceAll(".", "_")}`,
      ]),
    );
    const header: Record<string, unknown> = { __metadata__: source.metadata };
    const data: Uint8Array[] = [];
    let offset = 0;
    let renamed = 0;
    for (const key of source.keys()) {
      const dot = key.indexOf(".");
      const ldm = toLdm.get(key.slice(0, dot));
      if (ldm) renamed++;
      const bytes = source.bytes(key);
      header[ldm ? ldm + key.slice(dot) : key] = {
        dtype: source.info(key).dtype,
        shape: source.info(key).shape,
        data_offsets: [offset, offset + bytes.length],
      };
      data.push(bytes);
      offset += bytes.length;
    }
    source.close();
    expect(renamed).toBeGreaterThan(400);
    const path = join(mkdtempSync(join(tmpdir(), "diffuse-ldm-lora-")), "ldm-named.safetensors");
    writeFileSync(path, encodeRaw(JSON.stringify(header), data));
    const nets = await Networks.open(ckpt, {
      cacheDir: mkdtempSync(join(tmpdir(), "diffuse-ldm-lora-cache-")),
      threads: 1,
    });
    const applied = await new Loras(ckpt, nets).apply([{ name: "ldm", source: path, textEncoder: 1, unet: 1 }]);
    expect(applied.warnings).toEqual([]);
    const u = golden("goldens/sd15-tiny-lora/lora_unet.safetensors");
    const out = await (await nets.get("unet")).run({
      [UNET_IO.sample]: { data: u.get("sample"), dims: u.shape("sample") },
      [UNET_IO.timestep]: { data: u.get("t999/timestep"), dims: [1] },
      [UNET_IO.encoderHiddenStates]: { data: u.get("encoder_hidden_states"), dims: u.shape("encoder_hidden_states") },
    });
    expect(relErr(out[UNET_IO.out]!.data, u.get("m1.0/t999/out"))).toBeLessThan(1e-4);
    applied.release();
    await nets.release();
  });

  it("a file where some keys name nothing is applied for the rest, and the generation says how many and which", async () => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const source = SafetensorsFile.open(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"));
    const header: Record<string, unknown> = { __metadata__: source.metadata };
    const data: Uint8Array[] = [];
    let offset = 0;
    for (const key of [...source.keys(), "lora_unet_not_a_module.lora_down.weight"]) {
      const from = source.has(key) ? key : source.keys()[1]!;
      const bytes = source.bytes(from);
      header[key] = {
        dtype: source.info(from).dtype,
        shape: source.info(from).shape,
        data_offsets: [offset, offset + bytes.length],
      };
      data.push(bytes);
      offset += bytes.length;
    }
    source.close();
    const path = join(mkdtempSync(join(tmpdir(), "diffuse-extra-lora-")), "extra.safetensors");
    writeFileSync(path, encodeRaw(JSON.stringify(header), data));
    const nets = await Networks.open(ckpt, {
      cacheDir: mkdtempSync(join(tmpdir(), "diffuse-extra-lora-cache-")),
      threads: 1,
    });
    const applied = await new Loras(ckpt, nets).apply([{ name: "extra", source: path, textEncoder: 1, unet: 1 }]);
    expect(applied.warnings).toEqual([
      `LoRA extra (${path}): 1 of its keys name nothing in this model and were not applied (e.g. "lora_unet_not_a_module.lora_down.weight")`,
    ]);
    applied.release();
    await nets.release();
  });
});

describe.skipIf(!HAVE_REFERENCE)("an SDXL LoRA as kohya writes it (LDM block names, lora_te1_ and lora_te2_)", () => {
  it("reaches the UNet and both text encoders of sdxl-tiny, and merges like the same file with diffusers names", async () => {
    const ckpt = openCheckpoint(ref("models/sdxl-tiny"));
    const model = loraModel(ckpt);
    const dir = mkdtempSync(join(tmpdir(), "diffuse-sdxl-lora-"));
    const tensors = (ldm: boolean) => {
      const header: Record<string, unknown> = { __metadata__: { ss_base_model_version: "sdxl_base_v1-0" } };
      const data: Uint8Array[] = [];
      let offset = 0;
      const add = (name: string, shape: number[], seed: number) => {
        const values = Float32Array.from(
          { length: shape.reduce((a, b) => a * b, 1) },
          (_, i) => Math.sin(seed * 7919 + i) * 0.05,
        );
        header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + values.byteLength] };
        data.push(new Uint8Array(values.buffer));
        offset += values.byteLength;
      };
      let seed = 1;
      for (const [prefix, network] of [
        ["lora_unet_", "unet"],
        ["lora_te1_", "text_encoder"],
        ["lora_te2_", "text_encoder_2"],
      ] as const) {
        for (const [module, shape] of model.targets.modules.get(network)!) {
          if (!/(to_[qkv]|q_proj|fc1|proj_in)$/.test(module)) continue;
          const path = ldm && network === "unet" ? model.targets.ldmUnetPaths!.get(module)! : module;
          const name = prefix + path.replaceAll(".", "_");
          add(`${name}.lora_down.weight`, [4, ...shape.slice(1)], seed++);
          add(`${name}.lora_up.weight`, shape.length === 4 ? [shape[0]!, 4, 1, 1] : [shape[0]!, 4], seed++);
        }
      }
      const path = join(dir, `${ldm ? "ldm" : "diffusers"}-names.safetensors`);
      writeFileSync(path, encodeRaw(JSON.stringify(header), data));
      return path;
    };
    const [ldmFile, diffusersFile] = [tensors(true), tensors(false)];
    const lora = readLora(ldmFile, model);
    expect(lora.unmatched).toEqual([]);
    expect(new Set(lora.deltas.map((d) => d.network))).toEqual(new Set(["unet", "text_encoder", "text_encoder_2"]));
    const nets = await Networks.open(ckpt, {
      cacheDir: mkdtempSync(join(tmpdir(), "diffuse-sdxl-lora-cache-")),
      threads: 1,
    });
    const loras = new Loras(ckpt, nets);
    const hidden = async () => {
      const te2 = await nets.get("text_encoder_2");
      const ids = BigInt64Array.from({ length: 77 }, (_, i) => BigInt(i < 5 ? 10 + i : 999));
      return (
        await te2.run({
          input_ids: { data: ids, dims: [1, 77] },
          extra_token_embeddings: { data: new Float32Array(40), dims: [1, 40] },
        })
      )["last_hidden_state"]!.data;
    };
    const plain = await hidden();
    (await loras.apply([{ name: "ldm", source: ldmFile, textEncoder: 1, unet: 1 }])).release();
    const withLdm = await hidden();
    await nets.get("unet"); // its patches lower into SDXL's layouts (linear projections, two-layer transformers)
    (await loras.apply([{ name: "diffusers", source: diffusersFile, textEncoder: 1, unet: 1 }])).release();
    const withDiffusers = await hidden();
    expect(relErr(withLdm, plain)).toBeGreaterThan(1e-3);
    expect(relErr(withDiffusers, withLdm)).toBeLessThan(1e-6);
    await nets.release();
  });
});
