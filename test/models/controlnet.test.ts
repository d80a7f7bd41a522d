import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { unetConfigFromDiffusers } from "../../src/configs/unet.js";
import { buildControlNet, buildControlNetHint, CONTROLNET_IO } from "../../src/models/controlnet.js";
import type { ControlNetCheckpoint } from "../../src/weights/controlnet-checkpoint.js";
import { openControlNet } from "../../src/models/open-controlnet.js";
import { openControlNetFiles } from "../../src/weights/controlnet-checkpoint.js";
import { controlNetConfigFromShapes } from "../../src/weights/detect-controlnet.js";
import { downResidualName, MID_RESIDUAL } from "../../src/models/unet-blocks.js";
import { buildUNet, UNET_IO } from "../../src/models/unet.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session, type FeedValue } from "../../src/runtime/session.js";
import { fileWeightSource } from "../../src/weights/file-source.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { golden, HAVE_REFERENCE, ref, relErr } from "../helpers/fixtures.js";

const RESIDUALS = 9; // conv_in + 3 levels x 2 layers + 2 downsamplers

describe.skipIf(!HAVE_REFERENCE)("ControlNet (controlnet-tiny for sd15-tiny)", () => {
  const gold = golden("goldens/controlnet-tiny/controlnet.safetensors");
  /** The control image's embedding (the hint graph, on the first of the golden's two identical images), then the step's feeds. */
  const feeds = async (cn: ControlNetCheckpoint): Promise<Record<string, FeedValue>> => {
    const hintSession = await Session.create(
      serializeGraph(buildControlNetHint(cn.config, new ScopedWeights(cn.weights))),
      { threads: 1 },
    );
    const cond = gold.get("controlnet_cond");
    const hint = (
      await hintSession.run({ [CONTROLNET_IO.cond]: { data: cond.subarray(0, cond.length / 2), dims: [1, 3, 64, 64] } })
    )[CONTROLNET_IO.hint]!;
    return {
      [CONTROLNET_IO.sample]: { data: gold.get("sample"), dims: gold.shape("sample") },
      [CONTROLNET_IO.timestep]: { data: gold.get("timestep"), dims: [1] },
      [CONTROLNET_IO.encoderHiddenStates]: {
        data: gold.get("encoder_hidden_states"),
        dims: gold.shape("encoder_hidden_states"),
      },
      [CONTROLNET_IO.hint]: { data: hint.data, dims: hint.dims },
      [CONTROLNET_IO.scale]: { data: Float32Array.of(1), dims: [1] },
    };
  };

  const layouts = [
    { name: "diffusers folder (config.json)", path: ref("models/controlnet-tiny"), opts: {} },
    {
      name: "single file with control_model.* keys and the folder as --control-config",
      path: ref("models/controlnet-tiny.ldm.safetensors"),
      opts: { configDir: ref("models/controlnet-tiny") },
    },
  ];
  for (const l of layouts) {
    it(`${l.name}: down and mid residuals match diffusers' ControlNetModel (rel err < 1e-4)`, async () => {
      const cn = openControlNet(l.path, l.opts);
      try {
        const session = await Session.create(
          serializeGraph(buildControlNet(cn.config, new ScopedWeights(cn.weights))),
          { threads: 1 },
        );
        const inputs = await feeds(cn);
        // The conditioning embedding, computed once for one image, is diffusers' for each of the batch's (identical) images.
        const embedding = gold.get("intermediate/controlnet_cond_embedding");
        expect(
          relErr(inputs[CONTROLNET_IO.hint]!.data as Float32Array, embedding.subarray(0, embedding.length / 2)),
        ).toBeLessThan(1e-4);
        const out = await session.run(inputs);
        for (let i = 0; i < RESIDUALS; i++) {
          const err = relErr(out[downResidualName(i)]!.data, gold.get(`down_block_res_samples.${i}`));
          expect(out[downResidualName(i)]!.dims).toEqual(gold.shape(`down_block_res_samples.${i}`));
          expect(err, `residual ${i}`).toBeLessThan(1e-4);
        }
        expect(relErr(out[MID_RESIDUAL]!.data, gold.get("mid_block_res_sample"))).toBeLessThan(1e-4);
        expect(Object.keys(out)).toHaveLength(RESIDUALS + 1);
      } finally {
        cn.close();
      }
    });
  }

  it("the single file's architecture read from its shapes is the folder's config.json, but for what weights cannot show (heads, norm groups)", () => {
    const folder = openControlNet(ref("models/controlnet-tiny"));
    const single = openControlNetFiles(ref("models/controlnet-tiny.ldm.safetensors"), {
      configDir: ref("models/controlnet-tiny"),
    });
    try {
      expect(single.weights.keys().sort()).toEqual(folder.weights.keys().sort());
      const shapes = new Map(single.weights.keys().map((k) => [k, single.weights.shape(k)] as const));
      const detected = controlNetConfigFromShapes(shapes, "tiny");
      expect(detected.standardSizes).toBe(false);
      expect(detected.family).toBeUndefined(); // 32-wide text: no published family
      expect({
        ...detected.config,
        attentionHeads: folder.config.attentionHeads,
        normNumGroups: folder.config.normNumGroups,
      }).toEqual(folder.config);
    } finally {
      folder.close();
      single.close();
    }
    expect(() => openControlNet(ref("models/controlnet-tiny.ldm.safetensors"))).toThrow(
      /non-standard sizes.*--control-config/,
    );
  });

  it("conditioning scale multiplies every residual", async () => {
    const cn = openControlNet(ref("models/controlnet-tiny"));
    try {
      const session = await Session.create(serializeGraph(buildControlNet(cn.config, new ScopedWeights(cn.weights))), {
        threads: 1,
      });
      const out = await session.run({
        ...(await feeds(cn)),
        [CONTROLNET_IO.scale]: { data: Float32Array.of(0.8), dims: [1] },
      });
      const expected = gold.get("mid_block_res_sample").map((v) => v * 0.8);
      expect(relErr(out[MID_RESIDUAL]!.data, expected)).toBeLessThan(1e-4);
      expect(
        relErr(
          out[downResidualName(4)]!.data,
          gold.get("down_block_res_samples.4").map((v) => v * 0.8),
        ),
      ).toBeLessThan(1e-4);
    } finally {
      cn.close();
    }
  });

  it("the UNet built with residual inputs adds them to its skip connections and mid block as diffusers does", async () => {
    const config = unetConfigFromDiffusers(JSON.parse(readFileSync(ref("models/sd15-tiny/unet/config.json"), "utf8")));
    const file = SafetensorsFile.open(ref("models/sd15-tiny/unet/diffusion_pytorch_model.safetensors"));
    const session = await Session.create(
      serializeGraph(buildUNet(config, new ScopedWeights(fileWeightSource(file)), { controlResiduals: true })),
      { threads: 1 },
    );
    const residuals: Record<string, FeedValue> = {
      [MID_RESIDUAL]: { data: gold.get("mid_block_res_sample"), dims: gold.shape("mid_block_res_sample") },
    };
    for (let i = 0; i < RESIDUALS; i++)
      residuals[downResidualName(i)] = {
        data: gold.get(`down_block_res_samples.${i}`),
        dims: gold.shape(`down_block_res_samples.${i}`),
      };
    const out = await session.run({
      [UNET_IO.sample]: { data: gold.get("sample"), dims: gold.shape("sample") },
      [UNET_IO.timestep]: { data: gold.get("timestep"), dims: [1] },
      [UNET_IO.encoderHiddenStates]: {
        data: gold.get("encoder_hidden_states"),
        dims: gold.shape("encoder_hidden_states"),
      },
      ...residuals,
    });
    expect(relErr(out[UNET_IO.out]!.data, gold.get("unet_out_with_residuals"))).toBeLessThan(1e-4);
    file.close();
  });
});
