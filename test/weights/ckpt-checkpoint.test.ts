/**
 * Single-file `.ckpt` checkpoints (torch.save files as Stable Diffusion's training code wrote them) open like their
 * `.safetensors` twins, through the restricted pickle reader: the model is the `state_dict` entry, the training
 * state beside it (epoch, global_step, PyTorch Lightning's callback states keyed by the ModelCheckpoint class) is
 * read as data and left out, and anything that would run code, at the top level or nested in the state dict's
 * values, is refused by name with nothing executed.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UnsafePickleError } from "../../src/errors.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { TorchFile } from "../../src/weights/torch-pickle.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { int, str, torchSaveOf, torchZip, trainingCheckpointPickle } from "./torch-writer.js";

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const dir = mkdtempSync(join(tmpdir(), "diffuse-ckpt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!HAVE_REFERENCE)("a .ckpt checkpoint opens like its .safetensors twin", () => {
  const source = ref("models/sd15-tiny.ldm.safetensors");
  const config = { configDir: ref("models/sd15-tiny") };

  it("sd15-tiny as a training checkpoint: same family, components and every tensor's values", () => {
    const st = SafetensorsFile.open(source);
    const path = join(dir, "sd15-tiny.ckpt");
    writeFileSync(path, torchSaveOf(st, "training"));
    st.close();
    const fromCkpt = openCheckpoint(path, config);
    const fromSt = openCheckpoint(source, config);
    try {
      expect(fromCkpt.layout).toBe("single-file");
      expect(fromCkpt.config).toEqual(fromSt.config);
      expect(fromCkpt.components).toEqual(fromSt.components);
      for (const part of ["unet", "vae", "textEncoder"] as const) {
        const a = fromCkpt[part];
        const b = fromSt[part];
        expect(a.keys().sort()).toEqual(b.keys().sort());
        const differ: string[] = [];
        for (const k of b.keys()) {
          const want = bytesOf(b.float32(k));
          // read fresh and into a caller's buffer (the in-place path the network builders use)
          const into = new Float32Array(b.shape(k).reduce((x, y) => x * y, 1));
          if (
            a.dtype(k) !== b.dtype(k) ||
            !bytesOf(a.float32(k)).equals(want) ||
            !bytesOf(a.float32(k, into)).equals(want)
          )
            differ.push(k);
        }
        expect(differ).toEqual([]);
      }
    } finally {
      fromCkpt.close();
      fromSt.close();
    }
  });

  it("the training state beside the state dict is read as data: global_step, epoch, the callback keyed by its class", () => {
    const f = TorchFile.fromBytes(
      torchZip(trainingCheckpointPickle([{ name: "w", shape: [2], dtype: "F32", key: "0" }]), {
        "0": new Uint8Array(Float32Array.of(1, 2).buffer),
        score: new Uint8Array(Float32Array.of(0.25).buffer),
      }),
      "sd-v1-4.ckpt",
    );
    expect(f.values.get("global_step")).toBe(840000);
    expect(f.values.get("epoch")).toBe(6);
    expect(f.values.get("pytorch-lightning_version")).toBe("1.4.2");
    const callback = "callbacks.pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint";
    expect(f.values.get(`${callback}.dirpath`)).toBe("logs/checkpoints");
    expect([...f.float32(`${callback}.best_model_score`)]).toEqual([0.25]);
    expect([...f.float32("state_dict.w")]).toEqual([1, 2]);
  });
});

describe("a malicious .ckpt is refused by the global's name and nothing runs", () => {
  const marker = join(dir, "pwned");
  // os.system("touch <marker>") as a __reduce__ pickles it: GLOBAL os.system, the argument tuple, REDUCE.
  const payload = `cos\nsystem\n(${str(`touch ${marker}`)}tR`;
  const tensor = { name: "model.diffusion_model.w", shape: [1], dtype: "F32" as const, key: "0" };
  const storages = { "0": new Uint8Array(4), score: new Uint8Array(4) };
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["as a state dict value", "os.system", `${str("model.diffusion_model.evil")}${payload}`],
    [
      "nested in a list inside a state dict value",
      "os.system",
      `${str("model.diffusion_model.evil")}(${int(1)}(${payload}ltl`,
    ],
    ["as a dict key inside the state dict", "os.system", `${payload}${int(1)}`],
    [
      "the ModelCheckpoint class called (allowed as a name, never as a call)",
      "REDUCE pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
      `${str("x")}cpytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n)R`,
    ],
    ["builtins.eval", "builtins.eval", `${str("x")}cbuiltins\neval\n(${str("1")}tR`],
  ];
  for (const [where, offending, nested] of cases) {
    it(where, () => {
      const path = join(dir, "evil.ckpt");
      writeFileSync(path, torchZip(trainingCheckpointPickle([tensor], nested), storages));
      let error: unknown;
      try {
        openCheckpoint(path).close();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(UnsafePickleError);
      expect((error as UnsafePickleError).offending).toBe(offending);
      expect((error as Error).message).toContain(`${path}:`);
      expect((error as Error).message).toMatch(/nothing was executed/);
      expect(existsSync(marker)).toBe(false);
    });
  }

  it("at the top level, beside the state dict", () => {
    const path = join(dir, "evil-top.ckpt");
    const pkl = trainingCheckpointPickle([tensor]);
    // one more item of the outer dict, spliced before its closing SETITEMS and STOP
    const evil = Buffer.concat([pkl.subarray(0, pkl.length - 2), Buffer.from(`${str("hook")}${payload}u.`, "latin1")]);
    writeFileSync(path, torchZip(evil, storages));
    expect(() => openCheckpoint(path)).toThrow(UnsafePickleError);
    expect(existsSync(marker)).toBe(false);
  });
});
