import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError, UnsupportedModelError } from "../../src/errors.js";
import { openDiffusersComponent, componentInfo, type Checkpoint } from "../../src/weights/checkpoint.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { f32ToF16 } from "../../src/weights/half.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { caught, removeTempDirs, tempDir, writeSafetensors, type RawTensor } from "./safetensors-writer.js";

afterAll(removeTempDirs);

const COMPONENTS = ["unet", "vae", "textEncoder", "textEncoder2"] as const;

function summary(): { models: Record<string, { params: Record<string, number> }> } {
  return JSON.parse(readFileSync(ref("models/models_summary.json"), "utf8"));
}

/** Rewrites a safetensors file, letting `edit` drop (return undefined) or change tensors. */
function rewrite(src: string, dst: string, edit: (t: RawTensor) => RawTensor | undefined): string {
  const f = SafetensorsFile.open(src);
  const out: RawTensor[] = [];
  for (const [name, info] of f.tensors) {
    const t = edit({ name, dtype: info.dtype, shape: info.shape, data: f.bytes(name) });
    if (t) out.push(t);
  }
  f.close();
  return writeSafetensors(dst, out);
}

/** A copy of the sd15-tiny folder in a temp dir: configs linked, chosen components left out or replaced. */
function tinyFolder(tag: string, opts: { without?: string[]; keepWeights?: boolean } = {}): string {
  const dir = tempDir(tag);
  const src = ref("models/sd15-tiny");
  symlinkSync(join(src, "model_index.json"), join(dir, "model_index.json"));
  for (const sub of ["unet", "vae", "text_encoder", "scheduler", "tokenizer"]) {
    if (opts.without?.includes(sub)) continue;
    if (opts.keepWeights === false && ["unet", "vae", "text_encoder"].includes(sub)) {
      mkdirSync(join(dir, sub));
      symlinkSync(join(src, sub, "config.json"), join(dir, sub, "config.json"));
    } else {
      symlinkSync(join(src, sub), join(dir, sub));
    }
  }
  return dir;
}

function expectSameWeights(a: Checkpoint, b: Checkpoint): void {
  for (const c of COMPONENTS) {
    const [wa, wb] = [a[c], b[c]];
    expect(Boolean(wa), c).toBe(Boolean(wb));
    if (!wa || !wb) continue;
    expect(wa.keys().sort()).toEqual(wb.keys().sort());
    for (const k of wa.keys()) {
      expect(wa.shape(k), k).toEqual(wb.shape(k));
      expect(Buffer.from(wa.float32(k).buffer).equals(Buffer.from(wb.float32(k).buffer)), k).toBe(true);
    }
  }
}

describe.skipIf(!HAVE_REFERENCE)("openCheckpoint on the tiny models", () => {
  const FAMILIES = { "sd15-tiny": "sd1", "sd2v-tiny": "sd2", "sdxl-tiny": "sdxl", "lcm-tiny": "sd1" } as const;
  for (const [model, family] of Object.entries(FAMILIES)) {
    it(`opens the ${model} folder and single file (with its config folder) to the same config and weights`, () => {
      const folderPath = ref(`models/${model}`);
      const singlePath = ref(`models/${model}.ldm.safetensors`);
      const folder = openCheckpoint(folderPath);
      const single = openCheckpoint(singlePath, { configDir: folderPath });
      expect(folder.layout).toBe("diffusers");
      expect(single.layout).toBe("single-file");
      expect(single.config).toEqual(folder.config);
      expect(folder.config.family).toBe(family);
      expect(folder.config.predictionType).toBe(model === "sd2v-tiny" ? "v_prediction" : "epsilon");
      expect(folder.inpainting).toBe(false);
      expect(folder.textEncoderFolders).toEqual(
        model === "sdxl-tiny" ? ["text_encoder", "text_encoder_2"] : ["text_encoder"],
      );
      expect(single.textEncoderFolders).toEqual(folder.textEncoderFolders);
      // The single files carry what the pipeline does not use (SD2's text_projection); it is left out of both.
      expectSameWeights(folder, single);
      const params = summary().models[model]?.params;
      for (const c of COMPONENTS) {
        const info = folder.components[c],
          singleInfo = single.components[c];
        expect(Boolean(singleInfo), c).toBe(Boolean(info));
        if (!info || !singleInfo) continue;
        const name = c === "textEncoder" ? "text_encoder" : c === "textEncoder2" ? "text_encoder_2" : c;
        if (params) expect(info.parameters, `${model} ${c}`).toBe(params[name]);
        expect(singleInfo.parameters, `${model} ${c}`).toBe(info.parameters);
        expect(info.dtype).toBe("F32");
        expect(singleInfo.dtype).toBe("F16");
      }
      expect(single.files[0]).toBe(singlePath);
      expect(single.files).toContain(join(folderPath, "unet", "config.json"));
      expect(folder.files).toContain(join(folderPath, "unet", "diffusion_pytorch_model.safetensors"));
      expect(folder.files).toContain(join(folderPath, "text_encoder", "model.safetensors"));
      if (model === "sdxl-tiny")
        expect(folder.files).toContain(join(folderPath, "text_encoder_2", "model.safetensors"));
      folder.close();
      single.close();
    });
  }

  it("counts the parameters of every tiny model's components as models_summary.json does", () => {
    const models = summary().models;
    for (const [name, m] of Object.entries(models)) {
      for (const [component, expected] of Object.entries(m.params)) {
        const kind =
          component === "text_encoder_2"
            ? "textEncoder2"
            : component.startsWith("text_encoder")
              ? "textEncoder"
              : (component as "unet" | "vae");
        const { weights, files } = openDiffusersComponent(ref("models", name, component), kind);
        expect(componentInfo(weights).parameters, `${name}/${component}`).toBe(expected);
        for (const f of files) f.close();
      }
    }
  });

  it("refuses a single file with the config folder of another family, naming both", () => {
    const path = ref("models/sdxl-tiny.ldm.safetensors");
    const e = caught(() => openCheckpoint(path, { configDir: ref("models/sd2v-tiny") }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(
      /sdxl-tiny\.ldm\.safetensors: the file is a Stable Diffusion XL checkpoint .* but the config folder .*sd2v-tiny describes a Stable Diffusion 2\.x model/,
    );
  });

  it("asks for a config folder when a single file's sizes are not its family's published ones", () => {
    for (const [model, family] of [
      ["sd15-tiny", "1.x"],
      ["sd2v-tiny", "2.x"],
      ["sdxl-tiny", "XL"],
      ["lcm-tiny", "1.x"],
    ]) {
      const e = caught(() => openCheckpoint(ref(`models/${model}.ldm.safetensors`)));
      expect(e).toBeInstanceOf(UnsupportedModelError);
      expect(e.message).toContain(`a Stable Diffusion ${family} checkpoint with non-standard sizes`);
      expect(e.message).toMatch(/config folder/);
    }
  });

  it("takes the prediction type from the folder's scheduler config, and from `prediction` over it", () => {
    const dir = ref("models/sd2v-tiny");
    for (const [opts, expected] of [
      [{}, "v_prediction"],
      [{ prediction: "epsilon" }, "epsilon"],
    ] as const) {
      const folder = openCheckpoint(dir, opts);
      const single = openCheckpoint(ref("models/sd2v-tiny.ldm.safetensors"), { configDir: dir, ...opts });
      expect(folder.config.predictionType).toBe(expected);
      expect(single.config.predictionType).toBe(expected);
      folder.close();
      single.close();
    }
  });

  it("reads an fp16 variant folder, and prefers it when asked", () => {
    const dir = tinyFolder("fp16", { without: ["unet"] });
    mkdirSync(join(dir, "unet"));
    symlinkSync(ref("models/sd15-tiny/unet/config.json"), join(dir, "unet", "config.json"));
    const fp32 = ref("models/sd15-tiny/unet/diffusion_pytorch_model.safetensors");
    const src = SafetensorsFile.open(fp32);
    const half: RawTensor[] = src.keys().map((name) => ({
      name,
      dtype: "F16",
      shape: src.info(name).shape,
      data: new Uint8Array(f32ToF16(src.float32(name)).buffer),
    }));
    src.close();
    writeSafetensors(join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors"), half);
    const onlyHalf = openCheckpoint(dir);
    expect(onlyHalf.components.unet.dtype).toBe("F16");
    const reference = openCheckpoint(ref("models/sd15-tiny"));
    expectSameWeights(onlyHalf, reference);
    symlinkSync(fp32, join(dir, "unet", "diffusion_pytorch_model.safetensors"));
    const both = openCheckpoint(dir);
    expect(both.components.unet.dtype).toBe("F32");
    const preferHalf = openCheckpoint(dir, { variant: "fp16" });
    expect(preferHalf.components.unet.dtype).toBe("F16");
    for (const c of [onlyHalf, reference, both, preferHalf]) c.close();
  });

  it("reads a sharded component through its index", () => {
    const dir = tinyFolder("sharded", { without: ["vae"] });
    mkdirSync(join(dir, "vae"));
    symlinkSync(ref("models/sd15-tiny/vae/config.json"), join(dir, "vae", "config.json"));
    const src = ref("models/sd15-tiny/vae/diffusion_pytorch_model.safetensors");
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [
      (n: string) => n.startsWith("encoder."),
      (n: string) => !n.startsWith("encoder."),
    ].entries()) {
      const shard = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      rewrite(src, join(dir, "vae", shard), (t) => (part(t.name) ? t : undefined));
      const f = SafetensorsFile.open(join(dir, "vae", shard));
      for (const k of f.keys()) weightMap[k] = shard;
      f.close();
    }
    writeFileSync(
      join(dir, "vae", "diffusion_pytorch_model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const sharded = openCheckpoint(dir);
    const reference = openCheckpoint(ref("models/sd15-tiny"));
    expectSameWeights(sharded, reference);
    expect(sharded.files.filter((f) => f.includes("-of-00002"))).toHaveLength(2);
    sharded.close();
    reference.close();
  });

  it("close() releases the files", () => {
    const c = openCheckpoint(ref("models/sd15-tiny"));
    c.close();
    expect(() => c.unet.float32("conv_in.weight")).toThrow(/closed/);
  });
});

describe.skipIf(!HAVE_REFERENCE)("openCheckpoint errors name the file, the key and the fix", () => {
  const singlePath = ref("models/sd15-tiny.ldm.safetensors");
  const configDir = ref("models/sd15-tiny");

  it("missing unet folder", () => {
    const dir = tinyFolder("no-unet", { without: ["unet"] });
    const e = caught(() => openCheckpoint(dir));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(dir);
    expect(e.message).toContain("no unet/ folder");
    expect(e.message).toContain("model_index.json, unet/, vae/, text_encoder/");
  });

  it("missing weights file in a component folder", () => {
    const dir = tinyFolder("no-weights", { keepWeights: false });
    const e = caught(() => openCheckpoint(dir));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(join(dir, "unet"));
    expect(e.message).toContain("diffusion_pytorch_model.safetensors");
  });

  it("a pickle in place of the weights is refused, not loaded", () => {
    const dir = tinyFolder("pickle", { without: ["unet"] });
    mkdirSync(join(dir, "unet"));
    symlinkSync(ref("models/sd15-tiny/unet/config.json"), join(dir, "unet", "config.json"));
    writeFileSync(join(dir, "unet", "diffusion_pytorch_model.bin"), Buffer.from([0x80, 0x02]));
    expect(() => openCheckpoint(dir)).toThrow(/diffusion_pytorch_model\.bin: pickle checkpoints/);
    // A single-file .ckpt is read as data by the restricted reader (ckpt-checkpoint.test.ts); a broken one is named.
    const ckpt = join(tempDir("ckpt"), "model.ckpt");
    writeFileSync(ckpt, Buffer.from([0x80, 0x02]));
    expect(() => openCheckpoint(ckpt)).toThrow(CheckpointError);
    expect(() => openCheckpoint(ckpt)).toThrow(/model\.ckpt: 2 bytes is too short for a torch\.save file/);
  });

  it("missing path", () => {
    expect(() => openCheckpoint(join(tempDir("missing"), "nope.safetensors"))).toThrow(
      /nope\.safetensors: cannot open \(ENOENT\)/,
    );
  });

  it("missing tensor in a single file", () => {
    const path = rewrite(singlePath, join(tempDir("cut"), "cut.safetensors"), (t) =>
      t.name === "model.diffusion_model.input_blocks.4.1.proj_out.bias" ? undefined : t,
    );
    const e = caught(() => openCheckpoint(path, { configDir }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(path);
    expect(e.message).toContain('missing, first "down_blocks.1.attentions.0.proj_out.bias" (expected shape [32])');
  });

  it("missing tensor in a diffusers folder", () => {
    const dir = tinyFolder("cut-folder", { without: ["text_encoder"] });
    mkdirSync(join(dir, "text_encoder"));
    symlinkSync(ref("models/sd15-tiny/text_encoder/config.json"), join(dir, "text_encoder", "config.json"));
    const file = rewrite(
      ref("models/sd15-tiny/text_encoder/model.safetensors"),
      join(dir, "text_encoder", "model.safetensors"),
      (t) => (t.name === "text_model.encoder.layers.2.mlp.fc2.weight" ? undefined : t),
    );
    const e = caught(() => openCheckpoint(dir));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(file);
    expect(e.message).toContain('"text_model.encoder.layers.2.mlp.fc2.weight" (expected shape [32,37])');
  });

  it("wrong shape in a single file", () => {
    const path = rewrite(singlePath, join(tempDir("shape"), "shape.safetensors"), (t) =>
      t.name === "model.diffusion_model.out.2.weight" ? { ...t, shape: [4, 16, 1, 9] } : t,
    );
    const e = caught(() => openCheckpoint(path, { configDir }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(
      `${path}: "model.diffusion_model.out.2.weight" (diffusers "conv_out.weight") has shape [4,16,1,9], expected [4,16,3,3]`,
    );
    expect(e.message).toContain("does not describe this checkpoint");
  });

  it("a config folder of another size", () => {
    const dir = tinyFolder("other-config", { without: ["unet"] });
    mkdirSync(join(dir, "unet"));
    const unet = JSON.parse(readFileSync(ref("models/sd15-tiny/unet/config.json"), "utf8"));
    writeFileSync(join(dir, "unet", "config.json"), JSON.stringify({ ...unet, layers_per_block: 1 }));
    const e = caught(() => openCheckpoint(singlePath, { configDir: dir }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/not part of the UNet.*config folder .* does not describe this checkpoint/);
  });

  it("a truncated single file", () => {
    const bytes = readFileSync(singlePath);
    const path = join(tempDir("trunc"), "trunc.safetensors");
    writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    expect(() => openCheckpoint(path, { configDir })).toThrow(
      /trunc\.safetensors: tensor ".*": data_offsets .* go past the end of the data/,
    );
  });
});
