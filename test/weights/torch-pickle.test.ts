/**
 * The restricted torch.save reader: real files from torch (test/fixtures/rrdbnet, made by
 * scripts/reference/rrdbnet.py) read to the same values as their safetensors twins, the known malicious-pickle
 * patterns each refused with the name of what they asked for, and fuzzing (cuts, byte mutations, huge lengths and
 * counts, deep nesting) that must always end in a CheckpointError naming the file: never another exception, a
 * hang, or an allocation sized by the file's claims. Nothing is ever unpickled: the reader has no way to call
 * Python, and these tests check that what it refuses it refuses by name.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointError, UnsafePickleError } from "../../src/errors.js";
import { type PickleHooks, PickleGlobal, readPickle } from "../../src/weights/pickle-machine.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { TorchFile } from "../../src/weights/torch-pickle.js";
import { OWN_FIXTURES } from "../helpers/fixtures.js";
import { mulberry32 } from "../helpers/seeded-random.js";
import {
  int,
  op,
  pickle,
  stateDictPickle,
  str,
  torchZip,
  trainingCheckpointPickle,
  zipArchive,
} from "./torch-writer.js";

const dir = join(OWN_FIXTURES, "rrdbnet");
const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** The error reading `bytes` as a torch file throws (fails the test if it opens and reads every tensor). */
function refusal(bytes: Uint8Array, name = "bad.pth"): Error {
  try {
    const f = TorchFile.fromBytes(bytes, name);
    for (const k of f.keys()) f.float32(k);
  } catch (e) {
    return e as Error;
  }
  throw new Error(`${name} was read`);
}

/** Reads every tensor; returns the error if any, or undefined when the (mutated) file is still a valid one. */
function outcome(bytes: Uint8Array, name: string): Error | undefined {
  try {
    const f = TorchFile.fromBytes(bytes, name);
    for (const k of f.keys()) {
      try {
        f.float32(k);
      } catch (e) {
        // Integer tensors are not floats: refused by name, which is fine.
        if (!/expected a floating-point dtype/.test((e as Error).message)) throw e;
      }
    }
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

describe("torch.save files read as data", () => {
  for (const [pth, twin, tolerance] of [
    ["x4-new.pth", "x4-new.safetensors", 0], // zip format, fp32, under params_ema
    ["x4-old.pth", "x4-old.safetensors", 1e-3], // legacy format, fp16 storages
  ] as const) {
    it(`${pth} holds the same tensors as ${twin} (written by torch, read without unpickling)`, () => {
      const t = TorchFile.open(join(dir, pth));
      const s = SafetensorsFile.open(join(dir, twin));
      const prefix = pth.includes("new") ? "params_ema." : "";
      expect(t.keys().map((k) => k.slice(prefix.length))).toEqual(s.keys());
      for (const k of s.keys()) {
        expect(t.info(prefix + k).shape).toEqual(s.info(k).shape);
        const a = t.float32(prefix + k);
        const b = s.float32(k);
        const worst = b.reduce((m, v, i) => Math.max(m, Math.abs(a[i]! - v) - tolerance * Math.abs(v)), 0);
        expect(worst, k).toBeLessThanOrEqual(1e-7);
      }
      t.close();
      s.close();
    });
  }

  it("a hand-written state dict: OrderedDict, _rebuild_tensor_v2, a shared storage with an offset, a transposed view", () => {
    const pkl = stateDictPickle([
      { name: "a", shape: [2, 2], key: "0" },
      { name: "b", shape: [3], key: "1" },
    ]);
    const bytes = torchZip(pkl, { "0": f32([1, 2, 3, 4]), "1": f32([5, 6, 7]) });
    const f = TorchFile.fromBytes(bytes, "sd.pt");
    expect(f.keys()).toEqual(["a", "b"]);
    expect([...f.float32("a")]).toEqual([1, 2, 3, 4]);
    expect([...f.float32("b")]).toEqual([5, 6, 7]);
    // A view [2, 2] with strides (1, 2) at offset 1 of a 5-value storage: the transpose of [[2, 3], [4, 5]].
    const view = pickle(
      `}(${str("t")}ctorch._utils\n_rebuild_tensor_v2\n((${str("storage")}ctorch\nFloatStorage\n${str("0")}${str("cpu")}${int(5)}tQ${int(1)}(${int(2)}${int(2)}t(${int(1)}${int(2)}t\x89}tRu`,
    );
    const g = TorchFile.fromBytes(torchZip(view, { "0": f32([1, 2, 3, 4, 5]) }), "view.pt");
    expect([...g.float32("t")]).toEqual([2, 4, 3, 5]);
  });

  it("A1111's .pt embedding layout: nested dicts and plain values keep dotted names", () => {
    const pkl = pickle(
      `}(${str("string_to_param")}}(${str("*")}ctorch._utils\n_rebuild_tensor_v2\n((${str("storage")}ctorch\nFloatStorage\n${str("0")}${str("cpu")}${int(4)}tQ${int(0)}(${int(1)}${int(4)}t(${int(4)}${int(1)}t\x89}tRu${str("name")}${str("sks")}${str("step")}${int(500)}u`,
    );
    const f = TorchFile.fromBytes(torchZip(pkl, { "0": f32([1, 2, 3, 4]) }), "sks.pt");
    expect(f.keys()).toEqual(["string_to_param.*"]);
    expect(f.info("string_to_param.*").shape).toEqual([1, 4]);
    expect(f.values.get("name")).toBe("sks");
    expect(f.values.get("step")).toBe(500);
  });

  it("numpy scalars beside the state dict (a global_step saved as numpy.int64) are read as their numbers", () => {
    // As pickle protocol 2 (torch.save's) writes numpy.int64(470000) etc.: numpy's scalar(dtype(code) with its
    // pickled state (3, byte order, ...), the raw bytes as _codecs.encode(text, "latin1")), the text as BINUNICODE
    // (UTF-8: the bytes from 0x80 up take two).
    const unicode = (text: string) => {
      const utf8 = Buffer.from(text, "utf8");
      const n = Buffer.alloc(4);
      n.writeUInt32LE(utf8.length);
      return `X${n.toString("latin1")}${utf8.toString("latin1")}`;
    };
    const scalar = (code: string, order: string, raw: Buffer, module = "numpy.core.multiarray") =>
      `c${module}\nscalar\ncnumpy\ndtype\n${unicode(code)}\x89\x88\x87R(${int(3)}${unicode(order)}NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff${int(0)}tbc_codecs\nencode\n${unicode(raw.toString("latin1"))}${unicode("latin1")}\x86R\x86R`;
    const bytesOf = (bytes: number, write: (b: Buffer) => void) => {
      const b = Buffer.alloc(bytes);
      write(b);
      return b;
    };
    const i8 = bytesOf(8, (b) => b.writeBigInt64LE(470000n));
    const big = bytesOf(8, (b) => b.writeBigInt64LE(2n ** 60n + 1n));
    const f8 = bytesOf(8, (b) => b.writeDoubleLE(0.1234));
    const f4be = bytesOf(4, (b) => b.writeFloatBE(1.5));
    const pkl = pickle(
      `}(${str("state_dict")}ccollections\nOrderedDict\n)R${str("global_step")}${scalar("i8", "<", i8)}` +
        `${str("big")}${scalar("i8", "<", big)}${str("score")}${scalar("f8", "<", f8, "numpy._core.multiarray")}` +
        `${str("big_endian")}${scalar("f4", ">", f4be)}${str("flag")}${scalar("b1", "|", Buffer.of(1))}u`,
    );
    const f = TorchFile.fromBytes(torchZip(pkl), "trained.ckpt");
    expect(f.values.get("global_step")).toBe(470000);
    expect(f.values.get("big")).toBe(2n ** 60n + 1n);
    expect(f.values.get("score")).toBe(0.1234);
    expect(f.values.get("big_endian")).toBe(1.5);
    expect(f.values.get("flag")).toBe(true);

    // Only numbers: an object dtype, a scalar of the wrong size, or numpy's scalar called on anything else is refused.
    const objectScalar = pickle(`cnumpy\ndtype\n${unicode("O8")}\x89\x88\x87R`);
    expect(refusal(torchZip(objectScalar), "object.ckpt").message).toMatch(/numpy scalar of dtype "O8"/);
    const short = pickle(scalar("i8", "<", Buffer.of(1, 2, 3)));
    expect(refusal(torchZip(short), "short.ckpt")).toBeInstanceOf(CheckpointError);
    const notADtype = pickle(`cnumpy.core.multiarray\nscalar\n(${str("os")}${str("x")}tR`);
    expect(refusal(torchZip(notADtype), "odd.ckpt").message).toMatch(/numpy scalar of/);
  });
});

/** Each pattern would run something if unpickled; here each is refused, naming what it asked for. */
const MALICIOUS: ReadonlyArray<readonly [string, string, Buffer]> = [
  ["GLOBAL os.system + REDUCE", "os.system", pickle(`cos\nsystem\n(${str("touch /tmp/pwned")}tR`)],
  ["GLOBAL posix.system", "posix.system", pickle(`cposix\nsystem\n(${str("id")}tR`)],
  ["GLOBAL nt.system", "nt.system", pickle(`cnt\nsystem\n(${str("dir")}tR`)],
  ["STACK_GLOBAL builtins.eval", "builtins.eval", pickle(`${str("builtins")}${str("eval")}\x93(${str("1")}tR`)],
  ["builtins.exec", "builtins.exec", pickle(`cbuiltins\nexec\n(${str("import os")}tR`)],
  ["builtins.getattr", "builtins.getattr", pickle(`cbuiltins\ngetattr\n(${int(1)}${str("real")}tR`)],
  ["builtins.__import__", "builtins.__import__", pickle(`cbuiltins\n__import__\n(${str("os")}tR`)],
  ["Python 2's __builtin__.eval", "__builtin__.eval", pickle(`c__builtin__\neval\n(${str("1")}tR`)],
  ["subprocess.Popen", "subprocess.Popen", pickle(`csubprocess\nPopen\n((${str("id")}ltR`)],
  [
    "a whole module pickled (torch.nn.modules)",
    "torch.nn.modules.conv.Conv2d",
    pickle("ctorch.nn.modules.conv\nConv2d\n)R"),
  ],
  [
    "torch.storage._load_from_bytes",
    "torch.storage._load_from_bytes",
    pickle(`ctorch.storage\n_load_from_bytes\n(C\x01xtR`),
  ],
  ["numpy's reconstruct", "numpy.core.multiarray._reconstruct", pickle("cnumpy.core.multiarray\n_reconstruct\n)R")],
  ["INST os.system", "INST os.system", pickle(`(${str("id")}ios\nsystem\n`)],
  ["OBJ on a disallowed class", "os.system", pickle(`(cos\nsystem\n${str("id")}o`)],
  ["OBJ on an allowed global", "OBJ collections.OrderedDict", pickle("(ccollections\nOrderedDict\no")],
  ["NEWOBJ on an allowed global", "NEWOBJ collections.OrderedDict", pickle("ccollections\nOrderedDict\n)\x81")],
  ["NEWOBJ_EX", "NEWOBJ_EX collections.OrderedDict", pickle("ccollections\nOrderedDict\n)}\x92")],
  ["REDUCE on a storage type", "REDUCE torch.FloatStorage", pickle("ctorch\nFloatStorage\n)R")],
  ["REDUCE on a non-global", "REDUCE dict", pickle("})R")],
  ["BUILD on a global", "BUILD torch.FloatStorage", pickle("ctorch\nFloatStorage\n}b")],
  ["BUILD on a list", "BUILD list", pickle("]}b")],
  ["EXT1", "EXT1", pickle("\x82\x01)R")],
  ["EXT2", "EXT2", pickle("\x83\x01\x00)R")],
  ["EXT4", "EXT4", pickle("\x84\x01\x00\x00\x00)R")],
  ["a persistent id that is not a storage", "persistent id module", pickle(`(${str("module")}${str("os")}tQ`)],
  ["a persistent id of a disallowed type", "os.system", pickle(`(${str("storage")}cos\nsystem\n${str("0")}tQ`)],
  ["a text PERSID", "PERSID", pickle("P0\n")],
  // Lightning's ModelCheckpoint is allowed as a name (a dict key in SD training checkpoints), never built
  [
    "REDUCE on a name-only global",
    "REDUCE pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    pickle("cpytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n)R"),
  ],
  [
    "NEWOBJ on a name-only global",
    "NEWOBJ pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    pickle("cpytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n)\x81"),
  ],
  [
    "BUILD on a name-only global",
    "BUILD pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    pickle("cpytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n}b"),
  ],
  [
    "another Lightning class",
    "pytorch_lightning.callbacks.EarlyStopping",
    pickle("cpytorch_lightning.callbacks\nEarlyStopping\n"),
  ],
];

describe("malicious pickles are refused by name, nothing executed", () => {
  for (const [what, offending, pkl] of MALICIOUS) {
    it(`${what}: refused naming ${offending}`, () => {
      for (const [container, bytes] of [
        ["zip", torchZip(pkl)],
        // legacy: magic number, protocol 1001, system info, then the object
        ["legacy", legacy(pkl)],
      ] as const) {
        const e = refusal(bytes, `evil-${container}.pth`);
        expect(e, `${container}: ${e.message}`).toBeInstanceOf(UnsafePickleError);
        expect((e as UnsafePickleError).offending).toBe(offending);
        expect(e.message).toContain(`evil-${container}.pth:`);
        expect(e.message).toMatch(/nothing was executed/);
      }
    });
  }

  it("a malicious global after a valid tensor is refused too (a file is refused whole, not read up to the bad part)", () => {
    const good = stateDictPickle([{ name: "a", shape: [1], key: "0" }]);
    const evil = Buffer.concat([good.subarray(0, good.length - 2), op(`${str("x")}cos\nsystem\n(${str("id")}tRsu.`)]);
    const e = refusal(torchZip(evil, { "0": f32([1]) }));
    expect((e as UnsafePickleError).offending).toBe("os.system");
  });
});

function legacy(pkl: Buffer): Buffer {
  const magic = op("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
  const version = pickle("M\xe9\x03");
  const info = pickle(`}(${str("protocol_version")}M\xe9\x03${str("little_endian")}\x88u`);
  return Buffer.concat([magic, version, info, pkl, pickle("]")]);
}

describe("broken and hostile structure: a CheckpointError naming the file, bounded work", () => {
  const expectRefused = (bytes: Uint8Array, pattern: RegExp, name = "bad.pth") => {
    const e = refusal(bytes, name);
    expect(e, e.stack).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(`${name}:`);
    expect(e.message).toMatch(pattern);
  };

  it("huge lengths in strings and bytes are refused before allocating", () => {
    expectRefused(torchZip(op("\x80\x02X\xff\xff\xff\xff")), /needs 4294967295 bytes but only 0 remain/);
    expectRefused(torchZip(op("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f")), /a length of \d+ bytes, past the end/);
    expectRefused(torchZip(op("\x80\x04\x8d\x00\x00\x00\x00\x01\x00\x00\x00")), /past the end/);
    expectRefused(torchZip(op("\x80\x02\x8a\xff")), /a 255-byte integer/);
  });

  it("storage sizes are checked against the archive's entries, and tensor extents against their storage", () => {
    const pkl = (numel: number, shape: number[]) =>
      pickle(
        `}(${str("t")}ctorch._utils\n_rebuild_tensor_v2\n((${str("storage")}ctorch\nFloatStorage\n${str("0")}${str("cpu")}${int(numel)}tQ${int(0)}(${shape.map(int).join("")}t(${shape.map(() => int(1)).join("")}t\x89}tRu`,
      );
    expectRefused(
      torchZip(pkl(1 << 30, [4]), { "0": f32([1, 2, 3, 4]) }),
      /holds 1073741824 F32 values .* its entry has 16 bytes/,
    );
    expectRefused(
      torchZip(pkl(4, [5]), { "0": f32([1, 2, 3, 4]) }),
      /tensor "t" of shape \[5\] .* reaches past its storage/,
    );
    expectRefused(torchZip(pkl(4, [4])), /storage "0" has no entry archive\/data\/0/);
  });

  it("an archive without data.pkl, with two, or compressed entries is refused with the reason", () => {
    expectRefused(zipArchive([["archive/version", Buffer.from("3")]]), /holds one <name>\/data\.pkl, this one 0/);
    expectRefused(
      zipArchive([
        ["a/data.pkl", pickle("}")],
        ["b/data.pkl", pickle("}")],
      ]),
      /this one 2/,
    );
    const compressed = torchZip(pickle("}"));
    compressed.writeUInt16LE(8, compressed.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 10);
    expectRefused(compressed, /compressed \(method 8\)/);
  });

  it("a pickle that is not torch's, or a stray file, is refused as not a torch.save file", () => {
    expectRefused(pickle("}"), /not a torch\.save file \(no torch magic number\)/);
    expectRefused(Buffer.from("hello world"), /not a torch\.save file/);
    expectRefused(Buffer.alloc(2), /too short/);
  });

  it("deep nesting and self-referencing memo entries stop at the depth limit", () => {
    expectRefused(torchZip(pickle("]".repeat(2000) + "a".repeat(1999))), /nested more than 32 levels/);
    expectRefused(torchZip(pickle("]q\x00h\x00a")), /nested more than 32 levels/);
    expectRefused(torchZip(pickle(`${"(".repeat(101)}`)), /more than 100 nested MARKs/);
  });

  it("the opcode, memo and stack bounds hold (small limits)", () => {
    const hooks: PickleHooks = {
      global: (m, n) => new PickleGlobal(m, n),
      call: () => null,
      persistent: () => null,
      build: (t) => t,
    };
    const limits = { opcodes: 100, memo: 10, stack: 10, marks: 5 };
    const run = (body: string) => () => readPickle(pickle(body), hooks, "x.pkl", limits);
    expect(run("N0".repeat(60))).toThrow(/x\.pkl: .*more than 100 opcodes/);
    expect(run(`N${Array.from({ length: 11 }, (_, i) => `q${String.fromCharCode(i)}`).join("")}`)).toThrow(
      /more than 10 memo entries/,
    );
    expect(run("N".repeat(11))).toThrow(/more than 10 values on the stack/);
    expect(run("h\x05")).toThrow(/memo entry 5 was never stored/);
    expect(run("0")).toThrow(/pops an empty stack/);
    expect(run("NN")).toThrow(/STOP with 2 values on the stack/);
    expect(run("\xff")).toThrow(/unknown opcode 0xff/);
    expect(run("S'a'\n")).toThrow(/opcode STRING is not one a dictionary of tensors uses/);
  });

  // torch's own files, and an SD training checkpoint's layout (state_dict beside a callback keyed by its class)
  const corpus: ReadonlyArray<readonly [string, () => Buffer]> = [
    ...["x4-new.pth", "x4-old.pth", "x2-new.pth"].map((f) => [f, () => readFileSync(join(dir, f))] as const),
    [
      "training.ckpt",
      () =>
        torchZip(
          trainingCheckpointPickle([
            { name: "model.diffusion_model.out.2.weight", shape: [4, 3], dtype: "F16", key: "0" },
            { name: "first_stage_model.decoder.conv_out.bias", shape: [3], dtype: "F32", key: "1" },
          ]),
          { "0": new Uint8Array(24).fill(0x3c), "1": f32([1, 2, 3]), score: f32([0.5]) },
        ),
    ],
  ];
  for (const [file, read] of corpus) {
    it(`${file} cut at 200 points: always a CheckpointError naming the file`, () => {
      const bytes = read();
      const r = mulberry32(file.length * 7919);
      for (let n = 0; n < 200; n++) {
        const cut = Math.floor(r() * bytes.length);
        const e = outcome(bytes.subarray(0, cut), `cut-${cut}.pth`);
        expect(e, `cut at ${cut}`).toBeInstanceOf(CheckpointError);
        expect(e!.message).toContain(`cut-${cut}.pth`);
      }
    });

    it(`${file} with 300 random byte mutations (pickle, directory, anywhere): read or refused by CheckpointError`, () => {
      const bytes = read();
      const pklAt = file.includes("old") ? 0 : bytes.indexOf("data.pkl") + 8;
      const r = mulberry32(file.length * 104729);
      let refused = 0;
      for (let n = 0; n < 300; n++) {
        const copy = Buffer.from(bytes);
        const region = n % 3;
        // the pickle's first 4 KB, the zip directory at the end, or anywhere
        const at =
          region === 0
            ? pklAt + Math.floor(r() * 4096)
            : region === 1
              ? bytes.length - 1 - Math.floor(r() * 4096)
              : Math.floor(r() * bytes.length);
        const count = 1 + Math.floor(r() * 4);
        for (let k = 0; k < count; k++)
          copy[Math.min(at + k, copy.length - 1)] = r() < 0.3 ? 0xff : Math.floor(r() * 256);
        const e = outcome(copy, `mutant-${n}.pth`);
        if (e) {
          refused++;
          expect(e, `mutant ${n} at ${at}: ${e.stack}`).toBeInstanceOf(CheckpointError);
          expect(e.message).toContain(`mutant-${n}.pth`);
        }
      }
      expect(refused).toBeGreaterThan(50);
    });
  }
});
