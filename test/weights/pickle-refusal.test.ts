/**
 * Pickle checkpoints (.ckpt, .pt, .pth, .bin) can run code when unpickled; they are refused, never read. By their
 * extension, whatever they hold (a missing file too: the name is enough), and by their content when renamed
 * .safetensors: the first 8 bytes of a pickle, read as a safetensors header length, point far past the end of
 * the file, and the bytes themselves say pickle (0x80 + protocol) or torch's zip format ("PK").
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CheckpointError } from "../../src/errors.js";
import { openDiffusersComponent } from "../../src/weights/checkpoint.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { caught, encodeSafetensors, f32Bytes, removeTempDirs, tempDir } from "./safetensors-writer.js";

afterAll(removeTempDirs);

const op = (s: string) => Buffer.from(s, "latin1");

/**
 * Pickles as torch.save and pickle.dumps write them (hand-assembled opcodes; nothing here is ever unpickled).
 * Each would call os.system if a careless loader unpickled it.
 */
const PICKLES: Record<string, Buffer> = {
  // torch.save before 1.6 (_use_new_zipfile_serialization=False): protocol 2, the magic number as a LONG1 first.
  "legacy torch.save (protocol 2)": Buffer.concat([
    Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]),
    op("cos\nsystem\nX\x05\x00\x00\x00touch\x85R."),
  ]),
  // pickle.dumps(..., protocol=4): PROTO 4, then a FRAME with its 8-byte length.
  "protocol 4 with a frame": Buffer.concat([
    Buffer.from([0x80, 0x04, 0x95, 0x1c, 0, 0, 0, 0, 0, 0, 0]),
    op("\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x05touch\x85R."),
  ]),
  "protocol 5": Buffer.concat([
    Buffer.from([0x80, 0x05, 0x95, 0x1c, 0, 0, 0, 0, 0, 0, 0]),
    op("\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x05touch\x85R."),
  ]),
  // torch.save since 1.6: a zip archive (stored, uncompressed) holding archive/data.pkl.
  "torch.save zip archive": Buffer.concat([
    Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
    Buffer.alloc(16),
    op("archive/data.pklPK\x01\x02"),
    Buffer.alloc(64),
  ]),
};

describe("pickle checkpoints are refused", () => {
  const dir = tempDir("pickles");

  it("by extension, in any case, without opening the file (even a valid .safetensors under that name, or none)", () => {
    const valid = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: f32Bytes([1, 2]) }]);
    for (const name of [
      "model.ckpt",
      "model.CKPT",
      "model.pt",
      "model.pth",
      "pytorch_model.bin",
      "x.safetensors.ckpt",
    ]) {
      const path = join(dir, name);
      writeFileSync(path, valid);
      const e = caught(() => SafetensorsFile.open(path));
      expect(e, name).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(`${path}: pickle checkpoints`);
      expect(e.message).toMatch(/never unpickled/);
      expect(e.message).toMatch(/\.safetensors/); // and how to convert it
      expect(caught(() => SafetensorsFile.open(join(dir, `missing-${name}`))).message).toMatch(/pickle checkpoints/);
    }
  });

  for (const [kind, bytes] of Object.entries(PICKLES)) {
    it(`by content when renamed .safetensors: ${kind}`, () => {
      const path = join(dir, `${kind.replace(/\W+/g, "-")}.safetensors`);
      writeFileSync(path, bytes);
      const e = caught(() => SafetensorsFile.open(path));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(`${path}: pickle checkpoints`);
    });
  }

  it("a pickle of several megabytes renamed .safetensors is refused too", () => {
    const path = join(dir, "big.safetensors");
    writeFileSync(
      path,
      Buffer.concat([PICKLES["legacy torch.save (protocol 2)"]!, Buffer.alloc(4 * 1024 * 1024, 0x47)]),
    );
    expect(caught(() => SafetensorsFile.open(path)).message).toContain(`${path}: pickle checkpoints`);
  });

  // (Opening a whole folder with a pickle in it is in checkpoint.test.ts.)
  it("in a diffusers component folder, under the weights' .safetensors name or as the .bin beside it", () => {
    for (const [file, bytes] of [
      ["diffusion_pytorch_model.safetensors", PICKLES["torch.save zip archive"]!],
      ["diffusion_pytorch_model.bin", PICKLES["protocol 4 with a frame"]!],
    ] as const) {
      const unet = join(tempDir("pickle-folder"), "unet");
      mkdirSync(unet);
      writeFileSync(join(unet, file), bytes);
      const e = caught(() => openDiffusersComponent(unet, "unet"));
      expect(e, file).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(`${join(unet, file)}: pickle checkpoints`);
    }
  });

  it("a .safetensors file cut short whose length prefix starts like a pickle is called truncated, not a pickle", () => {
    // Header lengths whose first bytes read 0x80 0x02 (640 bytes) or "PK" (19,280 bytes).
    for (const length of [0x0280, 0x4b50]) {
      const names = Array.from({ length: 200 }, (_, i) => `tensor.${i}`);
      let text = JSON.stringify(
        Object.fromEntries(names.map((n, i) => [n, { dtype: "U8", shape: [1], data_offsets: [i, i + 1] }])),
      );
      text = text.length > length ? text.slice(0, length) : text.padEnd(length, " ");
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(length));
      const path = join(dir, `cut-${length}.safetensors`);
      writeFileSync(path, Buffer.concat([prefix, Buffer.from(text).subarray(0, 100)]));
      const e = caught(() => SafetensorsFile.open(path));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e.message).toMatch(/goes past the end of the 108-byte file; the file is truncated/);
      expect(e.message).not.toMatch(/pickle checkpoints/);
    }
  });
});
