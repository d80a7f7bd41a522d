import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";

describe.skipIf(!HAVE_REFERENCE)("diffuse inspect", () => {
  const summary = () => JSON.parse(readFileSync(ref("models/models_summary.json"), "utf8")).models["sd15-tiny"];

  it("reports the fixture README's parameter counts for sd15-tiny in both layouts, with stored dtypes and A1111's short hash", async () => {
    const params = summary().params;
    const folder = await runCli(["inspect", ref("models/sd15-tiny"), "--json"]);
    const single = await runCli(["inspect", ref("models/sd15-tiny.ldm.safetensors"), "--config", ref("models/sd15-tiny"), "--json"]);
    for (const [r, dtype] of [[folder, "F32"], [single, "F16"]] as const) {
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.family).toBe("sd1");
      expect(j.components).toEqual({
        unet: { params: params.unet, dtype },
        vae: { params: params.vae, dtype },
        text_encoder: { params: params.text_encoder, dtype },
      });
    }
    // The short hash is the first 10 hex digits of the file's sha256, which the fixtures' manifest lists.
    const manifest = JSON.parse(readFileSync(ref("manifest.json"), "utf8")) as { files: { path: string; sha256: string }[] };
    const sha256 = manifest.files.find((f) => f.path === "models/sd15-tiny.ldm.safetensors")!.sha256;
    expect(JSON.parse(single.stdout).hash).toBe(sha256.slice(0, 10));
  });

  it("refuses SD2 and SDXL single files with exit code 2 and one line", async () => {
    for (const f of ["sd2v-tiny.ldm.safetensors", "sdxl-tiny.ldm.safetensors"]) {
      const r = await runCli(["inspect", ref(`models/${f}`)]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/SD2|XL/);
    }
  });

  it("exits 2 with one line for a file that is not a checkpoint", async () => {
    const r = await runCli(["inspect", ref("models/models_summary.json")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
