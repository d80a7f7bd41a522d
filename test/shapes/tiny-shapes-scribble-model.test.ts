import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { buildControlNet, buildControlNetHint, CONTROLNET_IO } from "../../src/models/controlnet.js";
import { openControlNet } from "../../src/models/open-controlnet.js";
import { downResidualName, MID_RESIDUAL, residualShapes } from "../../src/models/unet-blocks.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { sha256File } from "../../src/weights/hash.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { relErr } from "../helpers/fixtures.js";

/**
 * The scribble ControlNet shipped beside the embedded model (models/tiny-shapes-scribble/) against the torch code that
 * trained it (scripts/train/train_scribble_controlnet.py, tiny_sd/controlnet.py). The fixture holds one control map,
 * inputs, and torch's conditioning embedding and residuals computed from the exported fp16 weights; our ONNX graphs
 * must give the same numbers, which proves that the trainer's module is the architecture our builder reads.
 */

const ROOT = resolve(import.meta.dirname, "../..");
const FOLDER = join(ROOT, "models/tiny-shapes-scribble");
const FIXTURE = join(ROOT, "test/fixtures/tiny-shapes-scribble-golden.safetensors");
const TOLERANCE = 1e-4;

describe("tiny-shapes-scribble ControlNet (models/tiny-shapes-scribble)", () => {
  it("the parity fixture was computed from this weight file", async () => {
    const meta = SafetensorsFile.open(FIXTURE).metadata;
    expect(
      await sha256File(join(FOLDER, "diffusion_pytorch_model.safetensors")),
      "rerun the trainer's export, which rewrites the fixture",
    ).toBe(meta["sha256:controlnet"]);
  });

  it("fits the embedded model's UNet: the same text width and channels at every skip connection and the mid block", () => {
    const cn = openControlNet(FOLDER);
    const model = openCheckpoint(join(ROOT, "models/tiny-shapes"));
    try {
      expect(cn.config.crossAttentionDim).toBe(model.config.unet.crossAttentionDim);
      expect(residualShapes(cn.config, 8, 8)).toEqual(residualShapes(model.config.unet, 8, 8));
      expect(cn.weights.dtype(cn.weights.keys()[0]!)).toBe("F16");
    } finally {
      cn.close();
      model.close();
    }
  });

  it("our ONNX ControlNet gives torch's conditioning embedding and residuals (rel err < 1e-4)", async () => {
    const gold = SafetensorsFile.open(FIXTURE);
    const cn = openControlNet(FOLDER);
    try {
      const w = new ScopedWeights(cn.weights);
      const hintSession = await Session.create(serializeGraph(buildControlNetHint(cn.config, w)), { threads: 1 });
      const hint = (
        await hintSession.run({
          [CONTROLNET_IO.cond]: { data: gold.float32("controlnet_cond"), dims: gold.info("controlnet_cond").shape },
        })
      )[CONTROLNET_IO.hint]!;
      expect(relErr(hint.data, gold.float32("hint"))).toBeLessThan(TOLERANCE);
      const session = await Session.create(serializeGraph(buildControlNet(cn.config, w)), { threads: 1 });
      const out = await session.run({
        [CONTROLNET_IO.sample]: { data: gold.float32("sample"), dims: gold.info("sample").shape },
        [CONTROLNET_IO.timestep]: { data: gold.float32("timestep"), dims: gold.info("timestep").shape },
        [CONTROLNET_IO.encoderHiddenStates]: {
          data: gold.float32("encoder_hidden_states"),
          dims: gold.info("encoder_hidden_states").shape,
        },
        [CONTROLNET_IO.hint]: { data: hint.data, dims: hint.dims },
        [CONTROLNET_IO.scale]: { data: Float32Array.of(1), dims: [1] },
      });
      const residuals = gold.keys().filter((k) => k.startsWith("down_block_res_samples.")).length;
      expect(residuals).toBe(6);
      expect(Object.keys(out)).toHaveLength(residuals + 1);
      for (let i = 0; i < residuals; i++) {
        const want = gold.float32(`down_block_res_samples.${i}`);
        expect(out[downResidualName(i)]!.dims).toEqual(gold.info(`down_block_res_samples.${i}`).shape);
        // A trained ControlNet's residuals are far from zero: a loader that dropped the zero convs' weights would fail here.
        expect(Math.max(...want.map(Math.abs)), `residual ${i}`).toBeGreaterThan(1e-3);
        expect(relErr(out[downResidualName(i)]!.data, want), `residual ${i}`).toBeLessThan(TOLERANCE);
      }
      expect(relErr(out[MID_RESIDUAL]!.data, gold.float32("mid_block_res_sample"))).toBeLessThan(TOLERANCE);
    } finally {
      cn.close();
      gold.close();
    }
  });
});
