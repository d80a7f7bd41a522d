import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { Loras, loraModel } from "../../src/pipeline/loras.js";
import { Networks } from "../../src/pipeline/networks.js";
import { readLora } from "../../src/weights/lora-file.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";
import { LORA_CASES, loraTextOut, loraUnetOut } from "../helpers/lora-network-outputs.js";

const ADAPTERS = "models/sd15-tiny-adapters";
describe.skipIf(!HAVE_REFERENCE)("LoRAs merged into sd15-tiny's networks as their cached weights load", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-lora-nets-"));
  const open = async (opts: { cacheWeights?: "compact" | "fp32" } = {}) => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const nets = await Networks.open(ckpt, { cacheDir, threads: 1, ...opts });
    return { ckpt, nets, loras: new Loras(ckpt, nets) };
  };

  for (const file of ["lora-kohya.safetensors", "lora-diffusers.safetensors"]) {
    it(`${file}: UNet and text encoder outputs at multipliers 1.0 and 0.6 match diffusers' fused LoRA (rel err < 1e-4), and back to the model without it`, async () => {
      const { nets, loras } = await open();
      const u = golden("goldens/sd15-tiny-lora/lora_unet.safetensors");
      const te = golden("goldens/sd15-tiny-lora/lora_text_encoder.safetensors");
      const base = golden("goldens/sd15-tiny/unet.safetensors");
      for (const m of [1.0, 0.6]) {
        const applied = await loras.apply([{ name: "fixture", source: ref(ADAPTERS, file), textEncoder: m, unet: m }]);
        for (const c of LORA_CASES)
          expect(relErr(await loraUnetOut(nets, c), u.get(`m${m.toFixed(1)}/${c}/out`))).toBeLessThan(1e-4);
        expect(relErr(await loraTextOut(nets), te.get(`m${m.toFixed(1)}/last_hidden_state`))).toBeLessThan(1e-4);
        applied.release();
      }
      // An empty set gives the checkpoint's own weights again.
      (await loras.apply([])).release();
      expect(relErr(await loraUnetOut(nets, "t999"), base.get("t999/out"))).toBeLessThan(1e-4);
      await nets.release();
    });
  }

  it("merges into a cache entry kept as fp32 (opened in place without a LoRA) the same way", async () => {
    const { nets, loras } = await open({ cacheWeights: "fp32" });
    const u = golden("goldens/sd15-tiny-lora/lora_unet.safetensors");
    const applied = await loras.apply([
      { name: "k", source: ref(ADAPTERS, "lora-kohya.safetensors"), textEncoder: 1, unet: 0.6 },
    ]);
    expect(relErr(await loraUnetOut(nets, "t999"), u.get("m0.6/t999/out"))).toBeLessThan(1e-4);
    applied.release();
    await nets.release();
  });

  it("changing the multiplier changes only the networks it changes, in their open sessions, and writes nothing to the compile cache", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-lora-cache-"));
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const messages: string[] = [];
    const nets = await Networks.open(ckpt, { cacheDir: dir, threads: 1, onStatus: (s) => messages.push(s) });
    const loras = new Loras(ckpt, nets);
    const source = ref(ADAPTERS, "lora-kohya.safetensors");
    (await loras.apply([{ name: "k", source, textEncoder: 1, unet: 1 }])).release();
    const unet = await nets.get("unet");
    const text = await nets.get("text_encoder");
    const entries = readdirSync(dir).filter((n) => !n.startsWith("."));
    const before = await loraUnetOut(nets, "t999");
    // Only the UNet multiplier changes: its weights are rewritten in its session (live-weights.ts), the text encoder is untouched.
    (await loras.apply([{ name: "k", source, textEncoder: 1, unet: 0.6 }])).release();
    expect(await nets.get("text_encoder")).toBe(text);
    expect(await nets.get("unet")).toBe(unet);
    expect(await loraUnetOut(nets, "t999")).not.toEqual(before);
    expect(readdirSync(dir).filter((n) => !n.startsWith("."))).toEqual(entries);
    expect(messages.filter((m) => m.startsWith("building"))).toHaveLength(2); // the first load built both, once
    await nets.release();
  });

  it("LoHa and LoKr deltas match the reference merge (rel err < 1e-5), and the UNet with each file merged", async () => {
    const ckpt = openCheckpoint(ref("models/sd15-tiny"));
    const model = loraModel(ckpt);
    const g = golden("goldens/sd15-tiny-lora/lycoris_deltas.safetensors");
    const cases = [
      {
        file: "loha",
        modules: ["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", "up_blocks.1.resnets.0.conv1"],
      },
      {
        file: "lokr",
        modules: ["down_blocks.0.attentions.1.transformer_blocks.0.ff.net.2", "mid_block.resnets.1.conv2"],
      },
    ];
    const nets = await Networks.open(ckpt, { cacheDir, threads: 1 });
    const loras = new Loras(ckpt, nets);
    for (const c of cases) {
      const lora = readLora(ref(ADAPTERS, `${c.file}.safetensors`), model);
      expect(lora.unmatched).toEqual([]);
      expect(lora.deltas.map((d) => d.key).sort()).toEqual(c.modules.map((m) => `${m}.weight`).sort());
      for (const module of c.modules) {
        const d = lora.deltas.find((x) => x.key === `${module}.weight`)!.delta;
        expect(d.kind).toBe("dense");
        if (d.kind !== "dense") continue;
        expect(
          relErr(
            d.delta.map((v) => v * d.scale),
            g.get(`${c.file}/${module}/delta`),
          ),
        ).toBeLessThan(1e-5);
      }
      const applied = await loras.apply([
        { name: c.file, source: ref(ADAPTERS, `${c.file}.safetensors`), textEncoder: 1, unet: 1 },
      ]);
      expect(relErr(await loraUnetOut(nets, "t999"), g.get(`${c.file}/unet_t999_out`))).toBeLessThan(1e-4);
      applied.release();
    }
    await nets.release();
  });
});
