import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { Loras, type WantedLora } from "../../src/pipeline/loras.js";
import { Networks } from "../../src/pipeline/networks.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { loraTextOut, loraUnetOut } from "../helpers/lora-network-outputs.js";
import { mulberry32 } from "../helpers/seeded-random.js";
import { encodeSafetensors, f32Bytes } from "../weights/safetensors-writer.js";

const ADAPTERS = "models/sd15-tiny-adapters";

const unetOut = (nets: Networks) => loraUnetOut(nets, "t999");
const textOut = loraTextOut;

/** Digests of every file of the compile cache's entries (scratch folders aside). */
function cacheFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir).filter((n) => !n.startsWith("."))) {
    const path = join(dir, entry);
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      continue; // a file (hashes.json, nchwc.json)
    }
    for (const name of names)
      out[`${entry}/${name}`] = createHash("sha256")
        .update(readFileSync(join(path, name)))
        .digest("hex");
  }
  return out;
}

/**
 * A kohya LoRA over the tiny UNet's conv_out, a convolution of 4 output channels that onnxruntime's own NCHWc pass
 * would copy into its layout at load (nchwc-layout.ts leaves it to the runtime), and over one attention projection.
 */
function writeConvOutLora(dir: string): string {
  const random = mulberry32(7);
  const values = (n: number) => f32Bytes(Float32Array.from({ length: n }, () => (random() - 0.5) * 0.4));
  const tensors = [
    // conv_out: [4, 16, 3, 3]
    {
      name: "lora_unet_conv_out.lora_down.weight",
      dtype: "F32" as const,
      shape: [2, 16, 3, 3],
      data: values(2 * 16 * 9),
    },
    { name: "lora_unet_conv_out.lora_up.weight", dtype: "F32" as const, shape: [4, 2, 1, 1], data: values(8) },
    {
      name: "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
      dtype: "F32" as const,
      shape: [2, 32],
      data: values(64),
    },
    {
      name: "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight",
      dtype: "F32" as const,
      shape: [32, 2],
      data: values(64),
    },
  ];
  const path = join(dir, "conv-out.safetensors");
  writeFileSync(path, encodeSafetensors(tensors));
  return path;
}

/**
 * A kohya LoRA over the tiny UNet's first upsampler convolution ([32, 32, 3, 3]): the graph computes that block at the
 * low resolution with 2x2 filters folded from the 3x3 one (GraphBuilder.upsampleConv3x3), which onnxruntime makes
 * at load, so the stored 3x3 filter is not what the runtime computes with.
 */
function writeUpsamplerLora(dir: string): string {
  const random = mulberry32(11);
  const values = (n: number) => f32Bytes(Float32Array.from({ length: n }, () => (random() - 0.5) * 0.4));
  const path = join(dir, "upsampler.safetensors");
  writeFileSync(
    path,
    encodeSafetensors([
      {
        name: "lora_unet_up_blocks_0_upsamplers_0_conv.lora_down.weight",
        dtype: "F32",
        shape: [2, 32, 3, 3],
        data: values(2 * 32 * 9),
      },
      {
        name: "lora_unet_up_blocks_0_upsamplers_0_conv.lora_up.weight",
        dtype: "F32",
        shape: [32, 2, 1, 1],
        data: values(64),
      },
    ]),
  );
  return path;
}

describe.skipIf(!HAVE_REFERENCE)("switching LoRAs on loaded networks (issue 16 item 5)", () => {
  const open = async (cacheDir: string, cacheWeights?: "compact" | "fp32") => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const nets = await Networks.open(ckpt, { cacheDir, threads: 1, cacheWeights });
    return { nets, loras: new Loras(ckpt, nets) };
  };
  /** Outputs of networks opened afresh with `wanted` merged as they load: what a switch must give. */
  const fresh = async (cacheDir: string, wanted: WantedLora[]) => {
    const { nets, loras } = await open(cacheDir);
    (await loras.apply(wanted)).release();
    const out = { unet: await unetOut(nets), text: await textOut(nets) };
    await nets.release();
    return out;
  };
  const kohya = (te: number, unet: number): WantedLora[] => [
    { name: "k", source: ref(ADAPTERS, "lora-kohya.safetensors"), textEncoder: te, unet },
  ];

  for (const storage of ["compact", "fp32"] as const) {
    it(`with ${storage} cache weights: a loaded UNet and text encoder take a new LoRA set in their open sessions, computing exactly what networks opened with it compute, and the cache entries stay byte for byte`, async () => {
      const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lora-switch-"));
      const { nets, loras } = await open(cacheDir, storage);
      const plain = { unet: await unetOut(nets), text: await textOut(nets) };
      const entries = cacheFiles(cacheDir);
      // An fp32 entry without a LoRA is the cache's own file, mapped as it is: the first LoRA gets a private copy.
      (await loras.apply(kohya(1, 1))).release();
      expect(await unetOut(nets)).toEqual((await fresh(cacheDir, kohya(1, 1))).unet);
      const unet = await nets.get("unet");
      const text = await nets.get("text_encoder");
      for (const [te, u] of [
        [0.6, 0.6],
        [1, -0.5],
        [0, 0],
      ] as const) {
        (await loras.apply(te === 0 && u === 0 ? [] : kohya(te, u))).release();
        expect(await nets.get("unet")).toBe(unet);
        expect(await nets.get("text_encoder")).toBe(text);
        const want = te === 0 && u === 0 ? plain : await fresh(cacheDir, kohya(te, u));
        expect(await unetOut(nets)).toEqual(want.unet);
        expect(await textOut(nets)).toEqual(want.text);
      }
      expect(cacheFiles(cacheDir)).toEqual(entries);
      await nets.release();
    });
  }

  it("a LoRA over conv_out (a convolution onnxruntime would copy into its own layout) is merged in the open UNet too, with the outputs of a fresh open, and switching off restores the model", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lora-switch-"));
    const source = writeConvOutLora(mkdtempSync(join(tmpdir(), "diffuse-lora-convout-")));
    const { nets, loras } = await open(cacheDir);
    const plain = await unetOut(nets);
    const unet = await nets.get("unet");
    const wanted: WantedLora[] = [{ name: "c", source, textEncoder: 1, unet: 1 }];
    const applied = await loras.apply(wanted);
    expect(applied.warnings).toEqual([]);
    applied.release();
    const got = await unetOut(nets);
    expect(await nets.get("unet")).toBe(unet);
    expect(got).not.toEqual(plain);
    expect(got).toEqual((await fresh(cacheDir, wanted)).unet);
    (await loras.apply([])).release();
    expect(await nets.get("unet")).toBe(unet);
    expect(await unetOut(nets)).toEqual(plain);
    await nets.release();
  });

  it("a LoRA over an upsampler convolution (whose folded 2x2 filters the runtime computes at load) reaches the UNet's output, switched on and off, with the outputs of a fresh open", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lora-switch-"));
    const source = writeUpsamplerLora(mkdtempSync(join(tmpdir(), "diffuse-lora-upsampler-")));
    const { nets, loras } = await open(cacheDir);
    const plain = await unetOut(nets);
    const wanted: WantedLora[] = [{ name: "u", source, textEncoder: 1, unet: 1 }];
    const applied = await loras.apply(wanted);
    expect(applied.warnings).toEqual([]);
    applied.release();
    const got = await unetOut(nets);
    expect(got).not.toEqual(plain);
    expect(got).toEqual((await fresh(cacheDir, wanted)).unet);
    (await loras.apply([])).release();
    expect(await unetOut(nets)).toEqual(plain);
    await nets.release();
  });
});
