import { describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { adapterFeatureShapes } from "../../src/configs/t2i-adapter.js";
import { CheckpointError, UnsupportedModelError } from "../../src/errors.js";
import { openT2IAdapter } from "../../src/models/open-t2i-adapter.js";
import { adapterFeatureName, buildT2IAdapter, T2I_ADAPTER_IO } from "../../src/models/t2i-adapter.js";
import { serializeGraph } from "../../src/onnx/serialize.js";
import { Session } from "../../src/runtime/session.js";
import { detectWeightsKind } from "../../src/weights/detect-kind.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { ScopedWeights } from "../../src/weights/weight-source.js";
import { goldenAt, OWN_FIXTURES, relErr } from "../helpers/fixtures.js";

const DIR = join(OWN_FIXTURES, "t2i-adapter");
const gold = goldenAt(join(DIR, "goldens.safetensors"));

/** Runs the adapter graph of the file at `path` on the golden control map of `family`; its feature maps. */
async function features(path: string, family: string) {
  const adapter = openT2IAdapter(path);
  try {
    const session = await Session.create(
      serializeGraph(buildT2IAdapter(adapter.config, new ScopedWeights(adapter.weights))),
      {
        threads: 1,
      },
    );
    const control = `${family}/control`;
    const out = await session.run({ [T2I_ADAPTER_IO.cond]: { data: gold.get(control), dims: gold.shape(control) } });
    await session.release();
    return { config: adapter.config, out };
  } finally {
    adapter.close();
  }
}

describe("T2I-Adapter graph (tiny random adapters of scripts/reference/t2i_adapter.py)", () => {
  const cases = [
    {
      name: "SD1 FullAdapter, TencentARC's original names",
      path: "sd15-tiny-adapter.pth.safetensors",
      family: "sd15-tiny",
    },
    { name: "SD1 FullAdapter, diffusers folder", path: "sd15-tiny-adapter", family: "sd15-tiny" },
    { name: "SDXL FullAdapterXL, diffusers folder (1-channel map)", path: "sdxl-tiny-adapter", family: "sdxl-tiny" },
    {
      name: "SDXL FullAdapterXL, diffusers-named single file (config from its shapes)",
      path: "sdxl-tiny-adapter/diffusion_pytorch_model.safetensors",
      family: "sdxl-tiny",
    },
  ];
  for (const c of cases) {
    it(`${c.name}: every feature map matches the reference (rel err < 1e-4)`, async () => {
      const { config, out } = await features(join(DIR, c.path), c.family);
      const [, , h, w] = gold.shape(`${c.family}/control`) as number[];
      const shapes = adapterFeatureShapes(config, h!, w!);
      expect(Object.keys(out)).toHaveLength(shapes.length);
      shapes.forEach((shape, i) => {
        const name = `${c.family}/feature_${i}`;
        expect(gold.shape(name)).toEqual([1, ...shape]);
        expect(out[adapterFeatureName(i)]!.dims).toEqual(gold.shape(name));
        expect(relErr(out[adapterFeatureName(i)]!.data, gold.get(name))).toBeLessThan(1e-4);
      });
    });
  }

  it("reads the same config from the original file's shapes as the diffusers folder's config.json says", () => {
    const single = openT2IAdapter(join(DIR, "sd15-tiny-adapter.pth.safetensors"));
    const folder = openT2IAdapter(join(DIR, "sd15-tiny-adapter"));
    try {
      expect(single.config).toEqual(folder.config);
      expect(single.config).toEqual({
        inChannels: 3,
        channels: [16, 32, 32],
        numResBlocks: 2,
        downscaleFactor: 8,
        adapterType: "full_adapter",
      });
    } finally {
      single.close();
      folder.close();
    }
  });

  it("is recognised by its keys in both layouts (not as a diffusers UNet part)", () => {
    for (const p of ["sd15-tiny-adapter.pth.safetensors", "sdxl-tiny-adapter/diffusion_pytorch_model.safetensors"]) {
      const f = SafetensorsFile.open(join(DIR, p));
      try {
        expect(detectWeightsKind(new Map([...f.tensors].map(([k, t]) => [k, t.shape] as const))).kind).toBe(
          "t2i-adapter",
        );
      } finally {
        f.close();
      }
    }
  });

  /** A folder with the SD1 adapter's weights and the given config.json. */
  const withConfig = (config: Record<string, unknown>) => {
    const dir = mkdtempSync(join(tmpdir(), "t2i-"));
    copyFileSync(
      join(DIR, "sd15-tiny-adapter/diffusion_pytorch_model.safetensors"),
      join(dir, "diffusion_pytorch_model.safetensors"),
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify({ _class_name: "T2IAdapter", ...config }));
    return dir;
  };

  it("a folder whose config.json describes another adapter names the mismatching tensor", () => {
    const dir = withConfig({ in_channels: 1, channels: [16, 32, 32] });
    expect(() => openT2IAdapter(dir)).toThrow(CheckpointError);
    expect(() => openT2IAdapter(dir)).toThrow(/conv_in\.weight.*\[16,192,3,3\], expected \[16,64,3,3\]/);
  });

  it("refuses the light adapter type with a message naming it", () => {
    const dir = withConfig({ adapter_type: "light_adapter" });
    expect(() => openT2IAdapter(dir)).toThrow(UnsupportedModelError);
    expect(() => openT2IAdapter(dir)).toThrow(/adapter_type "light_adapter" is not supported/);
  });
});
