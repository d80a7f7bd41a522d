import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseExtraModelPaths } from "../../src/hub/comfy-extra-paths.js";

describe("ComfyUI's extra_model_paths.yaml", () => {
  it("reads sections of base_path and folders (one or a | block), relative to base_path, base_path relative to the file", () => {
    const text = [
      "#config for a1111 ui",
      "a111:",
      "    base_path: ../webui/",
      "",
      "    checkpoints: models/Stable-diffusion",
      "    vae: 'models/VAE'   # quoted",
      "    loras: |",
      "         models/Lora",
      "         models/LyCORIS",
      "    controlnet: /abs/ControlNet",
      "other:",
      "    base_path: /data",
      "    is_default: true",
      "    checkpoints: ckpts",
    ].join("\n");
    expect(parseExtraModelPaths(text, "/opt/ComfyUI/extra_model_paths.yaml")).toEqual([
      {
        name: "a111",
        basePath: "/opt/webui",
        folders: {
          checkpoints: ["/opt/webui/models/Stable-diffusion"],
          vae: ["/opt/webui/models/VAE"],
          loras: ["/opt/webui/models/Lora", "/opt/webui/models/LyCORIS"],
          controlnet: ["/abs/ControlNet"],
        },
      },
      { name: "other", basePath: "/data", folders: { checkpoints: ["/data/ckpts"] } },
    ]);
  });

  it("refuses YAML beyond that form with the line, rather than guessing", () => {
    expect(() => parseExtraModelPaths("a111:\n    loras:\n      - models/Lora\n", "/x/extra_model_paths.yaml")).toThrow(
      InputError,
    );
    expect(() => parseExtraModelPaths("a111:\n    loras:\n      - models/Lora\n", "/x/extra_model_paths.yaml")).toThrow(
      /extra_model_paths\.yaml line 3: a YAML list.*--models-dir/,
    );
    expect(() => parseExtraModelPaths("a111:\n    loras: >\n      models/Lora\n", "/x/e.yaml")).toThrow(
      /line 2: a folded block/,
    );
  });
});
