/**
 * A single-file .ckpt generates as its .safetensors twin does: the same image for the same request, its compiled
 * graphs cached under the file's own hash (a second load builds nothing), and a kohya .pt LoRA merged as its
 * .safetensors twin is. The .ckpt and .pt files are the fixture's tensors re-saved in torch.save's format by the
 * tests' own writer (a training checkpoint as SD's training code wrote them: state_dict beside its training state).
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type LoadOptions, loadPipeline } from "../../src/pipeline/load-pipeline.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { resaveAsTorch } from "../weights/torch-writer.js";

const ADAPTERS = "models/sd15-tiny-adapters";

describe.skipIf(!HAVE_REFERENCE)("generating from a .ckpt checkpoint (sd15-tiny)", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-ckpt-gen-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ckpt = resaveAsTorch(ref("models/sd15-tiny.ldm.safetensors"), join(dir, "sd15-tiny.ckpt"), "training");
  const loraDir = join(dir, "loras");
  rmSync(loraDir, { recursive: true, force: true });
  mkdirSync(loraDir);
  resaveAsTorch(ref(ADAPTERS, "lora-kohya.safetensors"), join(loraDir, "kohya-pt.pt"), "state-dict");
  writeFileSync(join(loraDir, "kohya-st.safetensors"), readFileSync(ref(ADAPTERS, "lora-kohya.safetensors")));
  const options = (cacheDir: string, onStatus?: (m: string) => void): LoadOptions => ({
    config: ref("models/sd15-tiny"),
    cacheDir,
    threads: 1,
    loraDir,
    safetyChecker: false,
    watermark: false,
    provenance: false,
    ...(onStatus ? { onStatus } : {}),
  });
  const request = (prompt: string) => ({ prompt, steps: 3, seed: 7, width: 64, height: 64 });

  it("the same image as the .safetensors, with and without a .pt LoRA; compiled once, under the file's sha256", async () => {
    const cacheDir = join(dir, "cache");
    const built: string[] = [];
    const fromSt = await loadPipeline(ref("models/sd15-tiny.ldm.safetensors"), options(cacheDir));
    const fromCkpt = await loadPipeline(
      ckpt,
      options(cacheDir, (m) => built.push(m)),
    );
    try {
      expect(fromCkpt.checkpoint.config.family).toBe("sd1");
      expect(fromCkpt.networks.sha256).toBe(createHash("sha256").update(readFileSync(ckpt)).digest("hex"));
      const a = await fromSt.generate(request("a red square"));
      const b = await fromCkpt.generate(request("a red square"));
      expect(Buffer.from(b.images[0]!.image.data).equals(Buffer.from(a.images[0]!.image.data))).toBe(true);
      // kohya's .pt LoRA on the .ckpt model, its .safetensors twin on the .safetensors model: the same image,
      // and not the image without it (the LoRA did something).
      const withSt = await fromSt.generate(request("a red square <lora:kohya-st:0.8>"));
      const withPt = await fromCkpt.generate(request("a red square <lora:kohya-pt:0.8>"));
      expect(Buffer.from(withPt.images[0]!.image.data).equals(Buffer.from(withSt.images[0]!.image.data))).toBe(true);
      expect(Buffer.from(withPt.images[0]!.image.data).equals(Buffer.from(b.images[0]!.image.data))).toBe(false);
      expect(withPt.warnings).toEqual([]);
    } finally {
      await fromSt.close();
      await fromCkpt.close();
    }
    expect(built.some((m) => /building the/.test(m))).toBe(true);
    // A second load of the same .ckpt finds its graphs under its hash and builds nothing.
    const again: string[] = [];
    const reloaded = await loadPipeline(
      ckpt,
      options(cacheDir, (m) => again.push(m)),
    );
    await reloaded.close();
    expect(again.filter((m) => /building the/.test(m))).toEqual([]);
  });
});
