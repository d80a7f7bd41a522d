import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError } from "../../src/errors.js";
import { SafetensorsFile, toFloat32 } from "../../src/weights/safetensors.js";
import { mulberry32 as rng, nonZero, pick } from "../helpers/seeded-random.js";
import {
  encodeRaw,
  encodeSafetensors,
  f16Bytes,
  f32Bytes,
  removeTempDirs,
  tempDir,
  u16Bytes,
  writeSafetensors,
  type RawTensor,
} from "./safetensors-writer.js";

afterAll(removeTempDirs);

const dir = tempDir("safetensors");
let counter = 0;

function fileWith(bytes: Uint8Array): string {
  const p = join(dir, `t${counter++ % 16}.safetensors`);
  writeFileSync(p, bytes);
  return p;
}

/** Opens and reads every tensor, closing the file whatever happens. */
function openAndReadAll(path: string): void {
  const f = SafetensorsFile.open(path);
  try {
    for (const [name, t] of f.tensors) {
      if (t.dtype === "I64" || t.dtype === "I32") f.int64(name);
      else f.float32(name);
    }
  } finally {
    f.close();
  }
}

function expectCheckpointError(bytes: Uint8Array, message?: RegExp): void {
  const path = fileWith(bytes);
  let error: unknown;
  try {
    openAndReadAll(path);
  } catch (e) {
    error = e;
  }
  expect(error, `expected CheckpointError for ${path}`).toBeInstanceOf(CheckpointError);
  expect((error as Error).message).toContain(path);
  if (message) expect((error as Error).message).toMatch(message);
}

const VALID: RawTensor[] = [
  // The first data byte (0x00 of 1.5f) is not JSON whitespace, so a header length that runs into the data is never valid JSON.
  { name: "alpha.weight", dtype: "F32", shape: [2, 3], data: f32Bytes([1.5, -2, 3.25, 0, 1e-3, 7]) },
  { name: "beta.weight", dtype: "F16", shape: [4], data: f16Bytes([0.5, -1, 65504, 2 ** -24]) },
  { name: "gamma.bias", dtype: "BF16", shape: [3], data: u16Bytes([0x3f80, 0xc049, 0x7f80]) },
  { name: "delta.ids", dtype: "I64", shape: [2], data: new Uint8Array(BigInt64Array.from([3n, -4n]).buffer) },
  { name: "epsilon.scale", dtype: "F32", shape: [], data: f32Bytes([0.125]) },
];
const METADATA = { format: "pt", note: "fuzz base" };
const validBytes = () => encodeSafetensors(VALID, METADATA);

function headerOf(bytes: Buffer): { json: Record<string, any>; text: string; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  const text = bytes.subarray(8, 8 + n).toString("utf8");
  return { json: JSON.parse(text), text, data: bytes.subarray(8 + n) };
}

describe("SafetensorsFile: valid files", () => {
  it("reads names, shapes, metadata and values of every dtype", () => {
    const path = writeSafetensors(join(dir, "valid.safetensors"), VALID, METADATA);
    const f = SafetensorsFile.open(path);
    expect(f.keys()).toEqual(VALID.map((t) => t.name));
    expect(f.metadata).toEqual(METADATA);
    expect(f.info("alpha.weight").shape).toEqual([2, 3]);
    expect([...f.float32("alpha.weight")]).toEqual([1.5, -2, 3.25, 0, Math.fround(1e-3), 7]);
    expect([...f.float32("beta.weight")]).toEqual([0.5, -1, 65504, 2 ** -24]);
    expect([...f.float32("gamma.bias")]).toEqual([1, -3.140625, Infinity]);
    expect([...f.int64("delta.ids")]).toEqual([3n, -4n]);
    expect([...f.float32("epsilon.scale")]).toEqual([0.125]);
    f.close();
  });

  it("accepts an empty header object (no tensors)", () => {
    const f = SafetensorsFile.open(fileWith(encodeRaw("{}")));
    expect(f.keys()).toEqual([]);
    f.close();
  });
});

describe("SafetensorsFile: each malformation gives CheckpointError naming the file", () => {
  it("file shorter than 8 bytes", () => {
    for (const n of [0, 1, 7]) expectCheckpointError(new Uint8Array(n), /too short/);
  });

  it("header length past the end of the file", () => {
    const b = validBytes();
    b.writeBigUInt64LE(BigInt(b.length));
    expectCheckpointError(b, /past the end/);
    b.writeBigUInt64LE(2n ** 64n - 1n);
    expectCheckpointError(b, /past the end/);
  });

  it("header that is not a JSON object", () => {
    for (const text of ["[]", "[1,2]", '"text"', "null", "42", "true", "{not json}", '{"a":']) {
      expectCheckpointError(encodeRaw(text), /JSON/);
    }
    // Invalid UTF-8 inside a name.
    const bad = Buffer.from('{"\xff":1}', "latin1");
    const b = Buffer.concat([Buffer.alloc(8), bad]);
    b.writeBigUInt64LE(BigInt(bad.length));
    expectCheckpointError(b, /UTF-8/);
  });

  it("unknown dtype, including names that exist on Object.prototype", () => {
    for (const dtype of ["F17", "float32", "", "toString", "constructor", "__proto__", "hasOwnProperty"]) {
      const header = JSON.stringify({ x: { dtype, shape: [1], data_offsets: [0, 4] } });
      expectCheckpointError(encodeRaw(header, [new Uint8Array(4)]), /unknown dtype/);
    }
  });

  it("offsets outside the data", () => {
    const past = JSON.stringify({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } });
    expectCheckpointError(encodeRaw(past, [new Uint8Array(4)]), /past the end of the data/);
    const reversed = JSON.stringify({ x: { dtype: "F32", shape: [0], data_offsets: [4, 0] } });
    expectCheckpointError(encodeRaw(reversed, [new Uint8Array(4)]), /end before they begin/);
    const negative = JSON.stringify({ x: { dtype: "F32", shape: [1], data_offsets: [-4, 0] } });
    expectCheckpointError(encodeRaw(negative, [new Uint8Array(4)]), /data_offsets/);
  });

  it("overlapping tensors", () => {
    const header = JSON.stringify({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    });
    expectCheckpointError(encodeRaw(header, [new Uint8Array(12)]), /overlap/);
  });

  it("shape x dtype size different from the byte span", () => {
    const header = JSON.stringify({ x: { dtype: "F16", shape: [3], data_offsets: [0, 8] } });
    expectCheckpointError(encodeRaw(header, [new Uint8Array(8)]), /needs 6 bytes but data_offsets span 8/);
    const overflow = JSON.stringify({ x: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } });
    expectCheckpointError(encodeRaw(overflow, [new Uint8Array(8)]));
  });

  it("duplicate tensor names", () => {
    const header =
      '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expectCheckpointError(encodeRaw(header, [new Uint8Array(8)]), /twice/);
  });

  it("a folder, a missing path and a pickle are refused", () => {
    const folder = join(dir, "a-folder.safetensors");
    mkdirSync(folder, { recursive: true });
    expect(() => SafetensorsFile.open(folder)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(join(dir, "missing.safetensors"))).toThrow(/missing\.safetensors: no such file/);
    expect(() => SafetensorsFile.open(join(dir, "model.ckpt"))).toThrow(/pickle/);
  });
});

describe("SafetensorsFile: fuzzing", () => {
  const base = validBytes();
  const { json, text, data } = headerOf(base);
  const names = VALID.map((t) => t.name);
  const withHeader = (h: unknown) => encodeRaw(JSON.stringify(h), [data]);

  /** Mutations that always make the file invalid (reasons in each comment). */
  const invalid: Array<(r: () => number) => Uint8Array> = [
    // Any cut loses header bytes or the tail of the last tensor (tensors are packed to the end of the file).
    (r) => base.subarray(0, Math.floor(r() * base.length)),
    // A shorter header is a proper prefix of the JSON text; a longer one swallows the first data byte (0x00).
    (r) => {
      const b = Buffer.from(base);
      const delta = Math.floor(r() * (text.length + data.length + 64)) - text.length;
      b.writeBigUInt64LE(BigInt(Math.max(0, text.length + (delta === 0 ? 1 : delta))));
      return b;
    },
    (r) => {
      const b = Buffer.from(base);
      b.writeBigUInt64LE(BigInt(base.length) + BigInt(Math.floor(r() * 2 ** 52)) * BigInt(1 + Math.floor(r() * 4096)));
      return b;
    },
    // A dtype outside the table.
    (r) => {
      const h = structuredClone(json);
      const bad = [
        "F17",
        "f32",
        "",
        "toString",
        "valueOf",
        "__proto__",
        "U128",
        "float",
        String(r()),
        42,
        null,
        ["F32"],
      ];
      h[pick(r, names)].dtype = pick(r, bad);
      return withHeader(h);
    },
    // Changing begin or end alone changes the span; shifting both makes it overlap a neighbour or leave the data.
    (r) => {
      const h = structuredClone(json);
      const t = h[pick(r, names)];
      const delta = nonZero(r, 40);
      const which = Math.floor(r() * 3);
      if (which !== 1) t.data_offsets[0] += delta;
      if (which !== 0) t.data_offsets[1] += delta;
      return withHeader(h);
    },
    // No dimension is 0, so any change to one changes the element count; non-integers are refused outright.
    (r) => {
      const h = structuredClone(json);
      const t =
        h[
          pick(
            r,
            names.filter((n) => json[n].shape.length > 0),
          )
        ];
      const i = Math.floor(r() * t.shape.length);
      const replacement = pick(r, [t.shape[i] + nonZero(r, 5), -1, 1.5, "2", null, 2 ** 53]);
      t.shape[i] = typeof replacement === "number" && replacement === 0 ? 7 : replacement;
      return withHeader(h);
    },
    (r) => {
      const h = structuredClone(json);
      h[pick(r, names)] = pick(r, [
        null,
        1,
        "x",
        [],
        { dtype: "F32" },
        { shape: [1] },
        { dtype: "F32", shape: [1], data_offsets: [0] },
      ]);
      return withHeader(h);
    },
    // Two entries under one name.
    (r) => {
      const [a, b] = twoDistinct(r, names);
      return encodeRaw(text.replace(`"${b}":`, `"${a}":`), [data]);
    },
    (r) => withHeader({ ...json, __metadata__: { k: pick(r, [1, null, true, ["a"], { a: "b" }]) } }),
    (r) => encodeRaw(pick(r, ["[]", "null", "1", '"s"', "true", "[{}]", "{", "}", "{}}", "{]"]), [data]),
  ];

  /** Mutations that may still leave a valid file (a renamed tensor, a changed metadata string...). */
  const maybeValid: Array<(r: () => number) => Uint8Array> = [
    (r) => {
      const b = Buffer.from(base);
      const flips = 1 + Math.floor(r() * 4);
      for (let i = 0; i < flips; i++) b[8 + Math.floor(r() * text.length)] = Math.floor(r() * 256);
      return b;
    },
    (r) => {
      const t = Buffer.from(text);
      const at = Math.floor(r() * t.length);
      const garbage = Buffer.from(
        pick(r, [",", ":", "{", "}", "[", "]", '"', "\\", " ", "0", "-", "e", "\u00e9", "\u0000"]),
      );
      const mutated =
        r() < 0.5
          ? Buffer.concat([t.subarray(0, at), garbage, t.subarray(at)])
          : Buffer.concat([t.subarray(0, at), t.subarray(at + 1)]);
      return encodeRaw(mutated.toString("latin1"), [data]);
    },
    (r) => Buffer.concat([base, Buffer.alloc(1 + Math.floor(r() * 16), Math.floor(r() * 256))]),
  ];

  it("raises CheckpointError for each of 2,400 seeded corruptions and truncations", () => {
    const r = rng(20240611);
    const started = Date.now();
    for (let i = 0; i < 2400; i++) {
      const bytes = invalid[i % invalid.length]!(r);
      const path = fileWith(bytes);
      let error: unknown;
      try {
        openAndReadAll(path);
      } catch (e) {
        error = e;
      }
      if (!(error instanceof CheckpointError)) {
        throw new Error(
          `mutant ${i} (kind ${i % invalid.length}) gave ${error === undefined ? "no error" : String(error)}`,
        );
      }
    }
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it("random byte flips and edits either open cleanly or raise CheckpointError, never anything else", () => {
    const r = rng(7);
    let refused = 0,
      opened = 0;
    for (let i = 0; i < 1200; i++) {
      const bytes = maybeValid[i % maybeValid.length]!(r);
      try {
        openAndReadAll(fileWith(bytes));
        opened++;
      } catch (e) {
        if (!(e instanceof CheckpointError))
          throw new Error(`mutant ${i} (kind ${i % maybeValid.length}) threw ${String(e)}`);
        refused++;
      }
    }
    expect(refused + opened).toBe(1200);
    expect(refused).toBeGreaterThan(600);
  });
});

function twoDistinct<T>(r: () => number, items: readonly T[]): [T, T] {
  const i = Math.floor(r() * items.length);
  const j = (i + 1 + Math.floor(r() * (items.length - 1))) % items.length;
  return [items[i]!, items[j]!];
}

describe("half-precision conversion", () => {
  /** IEEE half bits to the float32 bit pattern, by bit manipulation (independent of the reader's table). */
  function halfBitsToF32Bits(h: number): number {
    const sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let frac = h & 0x3ff;
    if (exp === 0x1f) return (sign | 0x7f800000 | (frac << 13)) >>> 0;
    if (exp === 0) {
      if (frac === 0) return sign >>> 0;
      exp = 1;
      while ((frac & 0x400) === 0) {
        frac <<= 1;
        exp--;
      }
      frac &= 0x3ff;
    }
    return (sign | ((exp - 15 + 127) << 23) | (frac << 13)) >>> 0;
  }

  it("converts all 65,536 fp16 values to fp32 exactly", () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const f = SafetensorsFile.open(
      writeSafetensors(join(dir, "f16.safetensors"), [
        { name: "h", dtype: "F16", shape: [65536], data: u16Bytes(all) },
      ]),
    );
    const got = new Uint32Array(f.float32("h").buffer);
    f.close();
    let mismatches = 0;
    for (const h of all) {
      const want = halfBitsToF32Bits(h);
      const wantNaN = (want & 0x7f800000) === 0x7f800000 && (want & 0x7fffff) !== 0;
      if (wantNaN ? !Number.isNaN(new Float32Array(new Uint32Array([got[h]!]).buffer)[0]) : got[h] !== want)
        mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it("converts all 65,536 bf16 values to fp32 exactly (the upper half of the fp32 bits)", () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const f = SafetensorsFile.open(
      writeSafetensors(join(dir, "bf16.safetensors"), [
        { name: "b", dtype: "BF16", shape: [65536], data: u16Bytes(all) },
      ]),
    );
    const got = f.float32("b");
    f.close();
    const view = new DataView(new ArrayBuffer(4));
    let mismatches = 0;
    for (const b of all) {
      view.setUint32(0, (b << 16) >>> 0, true);
      const want = view.getFloat32(0, true);
      if (!(Object.is(got[b], want) || (Number.isNaN(want) && Number.isNaN(got[b]!)))) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect([got[0x3f80], got[0xc000], got[0x4049], got[0xff80]]).toEqual([1, -2, 3.140625, -Infinity]);
  });

  it("converts F64 to the nearest fp32", () => {
    const f = SafetensorsFile.open(
      writeSafetensors(join(dir, "f64.safetensors"), [
        { name: "pad", dtype: "U8", shape: [3], data: new Uint8Array(3) },
        { name: "d", dtype: "F64", shape: [3], data: new Uint8Array(Float64Array.from([0.1, -1e300, 2.5]).buffer) },
      ]),
    );
    // The F64 tensor starts at an odd offset in the file.
    expect([...f.float32("d")]).toEqual([Math.fround(0.1), -Infinity, 2.5]);
    f.close();
  });

  it("converts views at any byte offset (Buffer#slice is a view, not a copy)", () => {
    const whole = Buffer.alloc(1 + 16);
    const view = whole.subarray(1);
    new DataView(view.buffer, view.byteOffset).setFloat64(0, 2.5, true);
    new DataView(view.buffer, view.byteOffset).setFloat64(8, -0.75, true);
    expect([...toFloat32(view, "F64", "t")]).toEqual([2.5, -0.75]);
    new DataView(view.buffer, view.byteOffset).setFloat32(0, 1.25, true);
    expect([...toFloat32(view.subarray(0, 4), "F32", "t")]).toEqual([1.25]);
    view.writeUInt16LE(0x3c00, 0);
    expect([...toFloat32(view.subarray(0, 2), "F16", "t")]).toEqual([1]);
  });
});
