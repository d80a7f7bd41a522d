/**
 * Fuzzing a real checkpoint: the sd15-tiny single file of the reference fixtures (790 tensors, packed with no
 * gaps), truncated at random points and with one tensor's data_offsets, dtype or shape corrupted at a time. Each
 * mutant is opened by the safetensors reader, which opening a checkpoint starts with. Every one must be refused
 * with a CheckpointError that names the file and, where one tensor's entry is at fault, that tensor: the message
 * is what tells a user which part of a 2 GB download is broken.
 */
import { closeSync, copyFileSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckpointError } from "../../src/errors.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { mulberry32 as rng, nonZero, pick } from "../helpers/seeded-random.js";
import { encodeRaw, removeTempDirs, tempDir } from "./safetensors-writer.js";

afterAll(removeTempDirs);

interface Entry {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
}

/** The error opening `path` throws; fails the test when it opens. */
function refusal(path: string): Error {
  try {
    SafetensorsFile.open(path).close();
  } catch (e) {
    return e as Error;
  }
  throw new Error(`${path} opened`);
}

/** The tensor names a message quotes (`tensor "x"`, `tensors "x" and "y"`). */
function namedTensors(message: string): string[] {
  return [...message.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
}

describe.skipIf(!HAVE_REFERENCE)("a real checkpoint, truncated or with one tensor's entry corrupted", () => {
  // Read once the suite runs (a skipped suite's body is still collected, and the fixture may be absent).
  const source = ref("models/sd15-tiny.ldm.safetensors");
  let bytes: Buffer,
    headerLength: number,
    dataStart: number,
    data: Buffer,
    header: Record<string, Entry>,
    names: string[],
    path: string;
  beforeAll(() => {
    bytes = readFileSync(source);
    headerLength = Number(bytes.readBigUInt64LE(0));
    dataStart = 8 + headerLength;
    data = bytes.subarray(dataStart);
    header = JSON.parse(bytes.subarray(8, dataStart).toString("utf8")) as Record<string, Entry>;
    names = Object.keys(header).filter((k) => k !== "__metadata__");
    path = join(tempDir("fixture-fuzz"), "sd15-tiny.ldm.safetensors");
  });
  const offsets = (name: string) => header[name]!.data_offsets as [number, number];

  /** Whether `path` holds the fixture with a header of the original length (then only the header is rewritten). */
  let sameLayout = false;

  /**
   * Writes the fixture with `mutate` applied to a copy of one tensor's entry; the data section is the fixture's.
   * A header no longer than the original is padded with spaces to its length (as the reference writer pads) and
   * written over the header alone, which spares rewriting 2 MB of data for each of the 720 mutants.
   */
  function writeWithEntry(name: string, mutate: (e: Entry) => void): void {
    const h = structuredClone(header);
    mutate(h[name]!);
    const text = Buffer.from(JSON.stringify(h));
    if (text.length > headerLength) {
      writeFileSync(path, encodeRaw(text.toString(), [data]));
      sameLayout = false;
      return;
    }
    if (!sameLayout) copyFileSync(source, path);
    sameLayout = true;
    const fd = openSync(path, "r+");
    try {
      writeSync(fd, Buffer.concat([text, Buffer.alloc(headerLength - text.length, " ")]), 0, headerLength, 8);
    } finally {
      closeSync(fd);
    }
  }

  it("opens as it is, and re-encoded with an unchanged header (so every refusal below comes from the mutation)", () => {
    expect(names.length).toBe(790);
    SafetensorsFile.open(source).close();
    writeWithEntry(names[0]!, () => {});
    const reopened = SafetensorsFile.open(path);
    expect(reopened.keys()).toEqual(names);
    reopened.close();
  });

  it("cut anywhere in the data section: names the file and a tensor whose bytes were cut off (300 cuts)", () => {
    const r = rng(1201);
    const cuts = [
      dataStart,
      dataStart + 1,
      bytes.length - 1,
      ...Array.from({ length: 297 }, () => dataStart + Math.floor(r() * data.length)),
    ];
    copyFileSync(source, path);
    sameLayout = false;
    // Longest first: each cut shortens the same copy, so no file is written twice.
    for (const cut of cuts.sort((a, b) => b - a)) {
      truncateSync(path, cut);
      const e = refusal(path);
      const kept = cut - dataStart;
      const what = `cut at ${cut} of ${bytes.length}: ${e.message}`;
      expect(e, what).toBeInstanceOf(CheckpointError);
      expect(e.message, what).toContain(path);
      expect(e.message, what).toMatch(/past the end of the data .*truncated/);
      const named = namedTensors(e.message);
      expect(named.length, what).toBe(1);
      expect(offsets(named[0]!)[1], what).toBeGreaterThan(kept);
    }
  });

  it("cut inside the length prefix or the header: names the file and says it is cut short", () => {
    const r = rng(1202);
    const cuts = [
      0,
      1,
      7,
      8,
      9,
      dataStart - 1,
      ...Array.from({ length: 30 }, () => 8 + Math.floor(r() * headerLength)),
    ];
    sameLayout = false;
    for (const cut of cuts) {
      writeFileSync(path, bytes.subarray(0, cut));
      const e = refusal(path);
      expect(e, `cut at ${cut}`).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(path);
      expect(e.message, `cut at ${cut}`).toMatch(/too short|goes past the end of the .*-byte file/);
      // Its length prefix starts with 0x80, as a pickle does: it is still a cut .safetensors, not a pickle.
      expect(e.message, `cut at ${cut}`).not.toMatch(/pickle checkpoints/);
    }
  });

  /** One corruption of one entry: what it does, and whether it leaves the file valid after all (then skipped). */
  type Mutation = (r: () => number, e: Entry, name: string) => void;

  const offsetMutations: Mutation[] = [
    // Moving one end changes the span, which no longer matches shape x dtype.
    (r, e) => void ((e.data_offsets as number[])[0]! += nonZero(r, 64)),
    (r, e) => void ((e.data_offsets as number[])[1]! += nonZero(r, 64)),
    // Moving both keeps the span but lands on a neighbour (the tensors are packed), before 0 or past the data.
    (r, e) => {
      const o = e.data_offsets as number[];
      const d = nonZero(r, 4096);
      o[0]! += d;
      o[1]! += d;
    },
    (r, e) => {
      const [b, end] = e.data_offsets as number[];
      e.data_offsets = pick(r, [
        [end, b],
        [-1, end],
        [b, data.length + 1 + Math.floor(r() * 1e9)],
        [b, 2 ** 53],
        [b + 0.5, end + 0.5],
        [b],
        [b, end, end],
        [String(b), end],
        null,
        "0,8",
        {},
      ]);
    },
  ];

  const dtypeMutations: Mutation[] = [
    // Every name outside the table, and those of the table with another element size than F16 (2 bytes).
    (r, e) =>
      void (e.dtype = pick(r, [
        "F17",
        "f16",
        "float16",
        "",
        " F16",
        "F16 ",
        "toString",
        "__proto__",
        "constructor",
        16,
        null,
        ["F16"],
        { F16: 1 },
      ])),
    (r, e) =>
      void (e.dtype = pick(r, ["F32", "F64", "I64", "I32", "U8", "I8", "BOOL", "F8_E4M3", "F8_E5M2", "U64", "U32"])),
  ];

  const shapeMutations: Mutation[] = [
    // No dimension is 0, so any change to one changes the element count.
    (r, e) => {
      const s = e.shape as number[];
      const i = Math.floor(r() * s.length);
      s[i] = Math.max(0, s[i]! + nonZero(r, 7)) || s[i]! + 1;
    },
    (r, e) => {
      const s = e.shape as unknown[];
      s[Math.floor(r() * s.length)] = pick(r, [-1, 1.5, "2", null, 2 ** 53, [2], true]);
    },
    (r, e) => void (e.shape as number[]).push(2 + Math.floor(r() * 5)),
    (_r, e) => {
      const s = e.shape as number[];
      const big = s.findIndex((d) => d > 1);
      s.splice(big, 1); // every tensor of the fixture has a dimension above 1
    },
    (r, e) => void (e.shape = pick(r, [[2 ** 40, 2 ** 40], null, 4, "4,4", {}, [[4, 4]]])),
  ];

  const families: [string, Mutation[], number][] = [
    ["data_offsets", offsetMutations, 1301],
    ["dtype", dtypeMutations, 1302],
    ["shape", shapeMutations, 1303],
  ];

  for (const [field, mutations, seed] of families) {
    it(`${field} of one tensor corrupted: names the file and that tensor (240 mutants)`, () => {
      const r = rng(seed);
      for (let i = 0; i < 240; i++) {
        const name = pick(r, names);
        const kind = i % mutations.length;
        let changed: unknown;
        writeWithEntry(name, (e) => {
          mutations[kind]!(r, e, name);
          changed = e[field as keyof Entry];
        });
        const what = `mutant ${i} (${field} kind ${kind}) of "${name}": ${JSON.stringify(changed)}`;
        const e = refusal(path);
        expect(e, what).toBeInstanceOf(CheckpointError);
        expect(e.message, what).toContain(path);
        expect(namedTensors(e.message), `${what}\n${e.message}`).toContain(name);
      }
    });
  }
});
