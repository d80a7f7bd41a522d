import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { Loras } from "../../src/pipeline/loras.js";
import { Networks } from "../../src/pipeline/networks.js";
import { Session } from "../../src/runtime/session.js";
import type { WeightSource } from "../../src/weights/weight-source.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";
import { mulberry32 } from "../helpers/seeded-random.js";
import { encodeSafetensors, f32Bytes } from "../weights/safetensors-writer.js";

/** The layers LCM-LoRA's training script adapts: attention, feed-forward, projections and every convolution of the resnets and resamplers. */
const LCM_TARGETS =
  /^(down_blocks|mid_block|up_blocks)\..*\.(to_[qkv]|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2|conv1|conv2|conv_shortcut|downsamplers\.0\.conv|upsamplers\.0\.conv|time_emb_proj)$/;
const RANK = 4;
const ALPHA = 2;

interface Factors {
  module: string;
  up: Float32Array;
  upShape: number[];
  down: Float32Array;
  downShape: number[];
}

/** Random factors for every LCM-LoRA target of the tiny UNet, shaped as PEFT's Linear and Conv2d LoRA layers are. */
function lcmFactors(unet: WeightSource): Factors[] {
  const random = mulberry32(16);
  const out: Factors[] = [];
  for (const key of unet.keys()) {
    const module = key.replace(/\.weight$/, "");
    if (!key.endsWith(".weight") || !LCM_TARGETS.test(module)) continue;
    const shape = unet.shape(key);
    const rest = shape.slice(1).reduce((a, b) => a * b, 1);
    const values = (n: number) => Float32Array.from({ length: n }, () => (random() - 0.5) * 0.2);
    out.push({
      module,
      up: values(shape[0]! * RANK),
      upShape: shape.length === 4 ? [shape[0]!, RANK, 1, 1] : [shape[0]!, RANK],
      down: values(RANK * rest),
      downShape: shape.length === 4 ? [RANK, shape[1]!, shape[2]!, shape[3]!] : [RANK, shape[1]!],
    });
  }
  return out;
}

/** The kohya form (what lcm-lora-sdv1-5's pytorch_lora_weights.safetensors uses) and PEFT's, alpha baked into lora_B. */
function writeLcmLoras(dir: string, factors: readonly Factors[]): { kohya: string; peft: string } {
  const kohya = factors.flatMap((f) => {
    const name = `lora_unet_${f.module.replaceAll(".", "_")}`;
    return [
      { name: `${name}.lora_down.weight`, dtype: "F32" as const, shape: f.downShape, data: f32Bytes(f.down) },
      { name: `${name}.lora_up.weight`, dtype: "F32" as const, shape: f.upShape, data: f32Bytes(f.up) },
      { name: `${name}.alpha`, dtype: "F32" as const, shape: [], data: f32Bytes([ALPHA]) },
    ];
  });
  const peft = factors.flatMap((f) => [
    {
      name: `base_model.model.${f.module}.lora_A.weight`,
      dtype: "F32" as const,
      shape: f.downShape,
      data: f32Bytes(f.down),
    },
    {
      name: `base_model.model.${f.module}.lora_B.weight`,
      dtype: "F32" as const,
      shape: f.upShape,
      data: f32Bytes(f.up.map((v) => (v * ALPHA) / RANK)),
    },
  ]);
  const paths = { kohya: join(dir, "lcm-lora-sdv1-5.safetensors"), peft: join(dir, "lcm-lora-peft.safetensors") };
  writeFileSync(paths.kohya, encodeSafetensors(kohya));
  writeFileSync(paths.peft, encodeSafetensors(peft));
  return paths;
}

/** The UNet's weights with every delta added up front, as a fused checkpoint would hold them. */
function fused(unet: WeightSource, factors: readonly Factors[]): WeightSource {
  const byKey = new Map(factors.map((f) => [`${f.module}.weight`, f]));
  return {
    ...unet,
    origin: unet.origin,
    keys: () => unet.keys(),
    has: (k) => unet.has(k),
    shape: (k) => unet.shape(k),
    dtype: (k) => unet.dtype(k),
    float32: (k) => {
      const w = Float32Array.from(unet.float32(k));
      const f = byKey.get(k);
      if (!f) return w;
      const out = f.upShape[0]!;
      const rest = w.length / out;
      for (let o = 0; o < out; o++)
        for (let j = 0; j < RANK; j++)
          for (let c = 0; c < rest; c++)
            w[o * rest + c]! += (ALPHA / RANK) * f.up[o * RANK + j]! * f.down[j * rest + c]!;
      return w;
    },
  };
}

describe.skipIf(!HAVE_REFERENCE)(
  "an LCM-LoRA on sd15-tiny (item 6; the real lcm-lora-sdv1-5 needs the full-size model)",
  () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lcm-lora-"));
    const dir = mkdtempSync(join(tmpdir(), "diffuse-lcm-loras-"));

    it("kohya and PEFT (base_model.model.) keys reach every adapted layer: the merged UNet equals one built from fused weights", async () => {
      const ckpt = openCheckpoint(ref("models/sd15-tiny"));
      const factors = lcmFactors(ckpt.unet);
      expect(factors.length).toBeGreaterThan(60);
      const files = writeLcmLoras(dir, factors);
      const u = golden("goldens/sd15-tiny/unet.safetensors");
      const feeds = {
        [UNET_IO.sample]: { data: u.get("sample"), dims: u.shape("sample") },
        [UNET_IO.timestep]: { data: u.get("t999/timestep"), dims: [1] },
        [UNET_IO.encoderHiddenStates]: { data: u.get("encoder_hidden_states"), dims: u.shape("encoder_hidden_states") },
      };
      const reference = await Session.create(
        serializeGraph(buildUNet(ckpt.config.unet, new ScopedWeights(fused(ckpt.unet, factors)))),
        { threads: 1 },
      );
      const want = (await reference.run(feeds))[UNET_IO.out]!.data;
      await reference.release();
      const nets = await Networks.open(ckpt, { cacheDir, threads: 1 });
      const loras = new Loras(ckpt, nets);
      for (const source of [files.kohya, files.peft]) {
        const applied = await loras.apply([{ name: "lcm", source, textEncoder: 1, unet: 1 }]);
        expect(applied.warnings).toEqual([]);
        const got = (await (await nets.get("unet")).run(feeds))[UNET_IO.out]!.data;
        expect(relErr(got, want)).toBeLessThan(1e-5);
        applied.release();
      }
      await nets.release();
    });

    it("<lora:lcm-lora-sdv1-5:1> with sampler LCM, 4 steps, cfg 1 and 2: both formats give the same image, other than the model's own", async () => {
      const pipe = await loadPipeline(ref("models/sd15-tiny"), {
        cacheDir,
        threads: 1,
        loraDir: dir,
        safetyChecker: false,
      });
      try {
        const base = { negativePrompt: "", steps: 4, seed: 42, sampler: "LCM", width: 64, height: 64 };
        for (const cfg of [1, 2]) {
          const kohya = await pipe.generate({ ...base, cfgScale: cfg, prompt: "a red fox <lora:lcm-lora-sdv1-5:1>" });
          const peft = await pipe.generate({ ...base, cfgScale: cfg, prompt: "a red fox <lora:lcm-lora-peft:1>" });
          const plain = await pipe.generate({ ...base, cfgScale: cfg, prompt: "a red fox" });
          expect(kohya.info).toMatch(/Steps: 4, Sampler: LCM, CFG scale: \d/);
          expect(kohya.warnings).toEqual([]);
          const pixels = (r: typeof kohya) => Buffer.from(r.images[0]!.image.data);
          let max = 0;
          for (let i = 0; i < pixels(kohya).length; i++)
            max = Math.max(max, Math.abs(pixels(kohya)[i]! - pixels(peft)[i]!));
          expect(max).toBeLessThanOrEqual(1);
          expect(pixels(kohya).equals(pixels(plain))).toBe(false);
        }
      } finally {
        await pipe.close();
      }
    });
  },
);
