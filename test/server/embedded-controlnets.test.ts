import { describe, expect, it } from "vitest";
import { dirname } from "node:path";
import { defaultModelPath } from "../../src/default-model.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { listControlNets } from "../../src/server/controlnet-models.js";
import { tempDir, TINY_MODEL } from "./harness.js";

describe("ControlNets shipped beside the embedded model", () => {
  it("a server of the embedded model serves the package's models/ folder of ControlNets first, besides any --controlnet-dir", () => {
    const extra = tempDir("diffuse-cn-extra-");
    try {
      const shipped = dirname(defaultModelPath());
      expect(resolveServerConfig({ modelPath: defaultModelPath() }).controlnetDirs).toEqual([shipped]);
      expect(
        resolveServerConfig({ modelPath: defaultModelPath(), controlnetDirs: [extra.path] }).controlnetDirs,
      ).toEqual([shipped, extra.path]);
      // Another model's server does not: the embedded world's ControlNets fit only its UNet.
      expect(resolveServerConfig({ modelPath: TINY_MODEL }).controlnetDirs).toBeUndefined();
      expect(resolveServerConfig({ modelPath: TINY_MODEL, controlnetDirs: [extra.path] }).controlnetDirs).toEqual([
        extra.path,
      ]);
    } finally {
      extra.remove();
    }
  });

  it("the embedded checkpoint itself, in the same folder, is not listed as a ControlNet", () => {
    const titles = listControlNets([dirname(defaultModelPath())]).map((c) => c.title);
    expect(titles.filter((t) => /^tiny-shapes( |$)/.test(t))).toEqual([]);
  });
});
