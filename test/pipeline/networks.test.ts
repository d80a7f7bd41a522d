import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { VAE_IO } from "../../src/models/vae.js";
import { GRAPH_CODE, graphDigest, Networks, type NetworkName } from "../../src/pipeline/networks.js";
import { codeFiles } from "../../src/runtime/code-digest.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

const layouts = [
  { name: "diffusers folder", open: () => openCheckpoint(ref("models/sd15-tiny")) },
  {
    name: "single file + config folder",
    open: () => openCheckpoint(ref("models/sd15-tiny.ldm.safetensors"), { configDir: ref("models/sd15-tiny") }),
  },
];

describe.skipIf(!HAVE_REFERENCE)("sd15-tiny networks from a checkpoint, through the compile cache", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-networks-"));

  for (const layout of layouts) {
    it(`${layout.name}: text encoder, UNet and VAE match the reference`, async () => {
      const nets = await Networks.open(layout.open(), { cacheDir, threads: 1 });
      const text = golden("goldens/sd15-tiny/text_encoder.safetensors");
      // The pipeline's text encoders take textual-inversion rows; none here (one row of zeros that no id reads).
      const t = await (await nets.get("text_encoder")).run({
        [CLIP_TEXT_IO.inputIds]: { data: text.ints("text_encoder/input_ids"), dims: [3, 77] },
        [CLIP_TEXT_IO.extraTokens]: { data: new Float32Array(32), dims: [1, 32] },
      });
      expect(relErr(t[CLIP_TEXT_IO.lastHidden]!.data, text.get("text_encoder/last_hidden_state"))).toBeLessThan(1e-4);
      const states = text.get("text_encoder/hidden_states");
      const layerSize = 3 * 77 * 32;
      const penultimate = states.subarray(2 * layerSize, 3 * layerSize); // hidden_states[-2] of 4 (embeddings + 3 layers)
      expect(
        relErr(t[CLIP_TEXT_IO.hiddenStates]!.data.subarray(2 * layerSize, 3 * layerSize), penultimate),
      ).toBeLessThan(1e-4);

      const u = golden("goldens/sd15-tiny/unet.safetensors");
      const out = await (await nets.get("unet")).run({
        [UNET_IO.sample]: { data: u.get("sample"), dims: u.shape("sample") },
        [UNET_IO.timestep]: { data: u.get("t999/timestep"), dims: [1] },
        [UNET_IO.encoderHiddenStates]: { data: u.get("encoder_hidden_states"), dims: u.shape("encoder_hidden_states") },
      });
      expect(relErr(out[UNET_IO.out]!.data, u.get("t999/out"))).toBeLessThan(1e-4);

      const v = golden("goldens/sd15-tiny/vae.safetensors");
      const dec = await (await nets.get("vae_decoder")).run({
        [VAE_IO.latent]: { data: v.get("decode/z"), dims: [1, 4, 8, 8] },
      });
      expect(relErr(dec[VAE_IO.decoded]!.data, v.get("decode/out"))).toBeLessThan(1e-4);
      const enc = await (await nets.get("vae_encoder")).run({
        [VAE_IO.image]: { data: v.get("encode/image"), dims: [1, 3, 64, 64] },
      });
      expect(relErr(enc[VAE_IO.mean]!.data, v.get("encode/mean"))).toBeLessThan(1e-4);
      await nets.release();
    });
  }

  it("a second load of the same checkpoint builds nothing", async () => {
    const messages: string[] = [];
    const nets = await Networks.open(layouts[0]!.open(), { cacheDir, threads: 1, onStatus: (m) => messages.push(m) });
    await nets.get("unet");
    await nets.get("text_encoder");
    expect(messages.filter((m) => m.startsWith("building"))).toEqual([]);
    await nets.release();
  });

  it("keeps the fp16 single file's networks in its own precision, one copy each: 2 bytes per parameter", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-networks-size-"));
    const ckpt = openCheckpoint(ref("models/sd15-tiny.ldm.safetensors"), { configDir: ref("models/sd15-tiny") });
    const parameters = Object.values(ckpt.components).reduce((n, c) => n + c.parameters, 0);
    const nets = await Networks.open(ckpt, { cacheDir: dir, threads: 1 });
    for (const name of ["text_encoder", "unet", "vae_decoder", "vae_encoder"] as NetworkName[]) await nets.get(name);
    await nets.release();
    const entries = readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory() && !n.startsWith("."));
    expect(entries).toHaveLength(4);
    expect(entries.map((e) => readdirSync(join(dir, e)).sort().join(","))).toEqual(
      entries.map(() => "manifest.json,model.onnx,weights.half"),
    );
    const segments = entries.flatMap(
      (e) =>
        JSON.parse(readFileSync(join(dir, e, "manifest.json"), "utf8")).expand.segments as {
          format: string;
          storedLength: number;
        }[],
    );
    expect(new Set(segments.map((s) => s.format))).toEqual(new Set(["f16"]));
    // The VAE's encoder and decoder each hold their own part of its weights; tensors under 1 KiB stay in model.onnx.
    expect(segments.reduce((n, s) => n + s.storedLength, 0)).toBeLessThanOrEqual(2 * parameters);
    ckpt.close();
  });

  it("keys a network by what shaped its graph: the same build gives the same key, other options, constants, layout or code another", () => {
    const ckpt = layouts[0]!.open();
    const unet = (opts: Parameters<typeof buildUNet>[2], config = ckpt.config.unet) =>
      buildUNet(config, new ScopedWeights(ckpt.unet), opts);
    const base = graphDigest(unet({ attention: "ms-mha" }), 16, "code");
    expect(graphDigest(unet({ attention: "ms-mha" }), 16, "code")).toBe(base);
    expect(graphDigest(unet({ attention: "ms-mha", height: 16, width: 16 }), 16, "code")).toBe(base); // nominal sizes only check shapes
    expect(graphDigest(unet({ attention: "matmul" }), 16, "code")).not.toBe(base);
    expect(graphDigest(unet({ attention: "ms-mha" }, { ...ckpt.config.unet, normEps: 1e-6 }), 16, "code")).not.toBe(
      base,
    );
    expect(graphDigest(unet({ attention: "ms-mha" }), 8, "code")).not.toBe(base);
    expect(graphDigest(unet({ attention: "ms-mha" }), 16, "other code")).not.toBe(base);
    ckpt.close();
  });

  it("keys a network by the code of every builder, of checkpoint reading and of the layout, and by nothing else", () => {
    const src = join(import.meta.dirname, "../../src");
    const files = codeFiles(GRAPH_CODE).map((f) => relative(src, f));
    for (const f of [
      "models/unet.ts",
      "models/clip-text.ts",
      "models/vae.ts",
      "models/layers.ts",
      "onnx/builder.ts",
      "onnx/graph.ts",
      "onnx/serialize.ts",
      "weights/safetensors.ts",
      "weights/half.ts",
      "weights/ldm-keymap.ts",
      "runtime/nchwc-layout.ts",
      "runtime/compact-weights.ts",
    ]) {
      expect(files, f).toContain(f);
    }
    for (const f of files)
      expect(f).toMatch(
        /^(configs|models|onnx|weights|runtime\/(nchwc-layout|compact-weights)\.ts$)|^(errors|regular-file|json-depth)\.ts$/,
      );
  });

  it("replaces a network's entry when it is built again with other options, and leaves the other networks and checkpoints alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-networks-replace-"));
    const unetEntries = () =>
      readdirSync(dir)
        .filter((n) => n.includes("-unet-"))
        .sort();
    const load = async (i: number, attention: "ms-mha" | "matmul"): Promise<string> => {
      const nets = await Networks.open(layouts[i]!.open(), { cacheDir: dir, threads: 1, attention });
      await nets.get("unet");
      await nets.get("text_encoder");
      await nets.release();
      nets.checkpoint.close();
      return nets.sha256.slice(0, 24);
    };
    const first = await load(0, "ms-mha");
    const second = await load(1, "ms-mha");
    expect(first).not.toBe(second);
    const before = unetEntries();
    expect(before).toHaveLength(2);
    await load(0, "matmul");
    const after = unetEntries();
    expect(after).toHaveLength(2);
    expect(after.filter((n) => n.startsWith(second))).toEqual(before.filter((n) => n.startsWith(second)));
    expect(after.filter((n) => n.startsWith(first))).toHaveLength(1);
    expect(after.filter((n) => n.startsWith(first))).not.toEqual(before.filter((n) => n.startsWith(first)));
    expect(readdirSync(dir).filter((n) => n.includes("-text_encoder-"))).toHaveLength(2);
  });
});
