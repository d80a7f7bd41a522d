import { cpSync, mkdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { CheckpointError, InputError } from "../../src/errors.js";
import { readGenerationConfig } from "../../src/pipeline/generation-config.js";
import { ClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { SafetensorsFile } from "../../src/weights/safetensors.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { caught, encodeRaw, removeTempDirs, tempDir } from "./safetensors-writer.js";

/**
 * Headers built to cost the reader: nesting that overflows the stack of whatever walks the parsed value, more
 * tensors or values than any checkpoint has (each costs memory and time in JSON.parse before validation can say
 * no), and values so long that quoting them makes a 100 MB error message.
 */

afterAll(removeTempDirs);
afterEach(() => vi.restoreAllMocks());

function write(headerText: string, tag: string): string {
  const path = join(tempDir(tag), `${tag}.safetensors`);
  writeFileSync(path, encodeRaw(headerText));
  return path;
}

const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

describe("SafetensorsFile refuses hostile headers before parsing them", () => {
  it("a header nested 5,000 deep (10 KB) gives CheckpointError naming the file and the 64-level limit", () => {
    const headers = {
      shape: `{"a":{"dtype":"F32","shape":${deep(5000)},"data_offsets":[0,0]}}`,
      dtype: `{"a":{"dtype":${deep(5000)},"shape":[],"data_offsets":[0,0]}}`,
      offsets: `{"a":{"dtype":"F32","shape":[0],"data_offsets":${deep(5000)}}}`,
    };
    for (const [field, text] of Object.entries(headers)) {
      const path = write(text, `deep-${field}`);
      const e = caught(() => SafetensorsFile.open(path));
      expect(e, field).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(path);
      expect(e.message).toMatch(/nested more than 64 levels/);
    }
  });

  it("a header naming more than 100,000 tensors is refused without being parsed", () => {
    const entries = Array.from(
      { length: 100_001 },
      (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`,
    );
    const path = write(`{${entries.join(",")}}`, "many");
    const parse = vi.spyOn(JSON, "parse");
    const e = caught(() => SafetensorsFile.open(path));
    expect(parse).not.toHaveBeenCalled();
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(path);
    expect(e.message).toMatch(/more than 100000 tensors/);
  });

  it("100,000 tensors, the bound itself, still open", () => {
    const entries = Array.from(
      { length: 100_000 },
      (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`,
    );
    const f = SafetensorsFile.open(write(`{${entries.join(",")}}`, "bound"));
    expect(f.tensors.size).toBe(100_000);
    f.close();
  });

  it("a header holding millions of values in one tensor's shape is refused without being parsed", () => {
    const path = write(`{"a":{"dtype":"F32","shape":[${"1,".repeat(2_000_000)}1],"data_offsets":[0,4]}}`, "long-shape");
    const parse = vi.spyOn(JSON, "parse");
    const e = caught(() => SafetensorsFile.open(path));
    expect(parse).not.toHaveBeenCalled();
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(path);
    expect(e.message).toMatch(/more than 1600000 values/);
  });

  it("an error about a long value quotes the start of it, not all of it", () => {
    const shape = `[${"7,".repeat(50_000)}-1]`;
    const e = caught(() =>
      SafetensorsFile.open(write(`{"a":{"dtype":"F32","shape":${shape},"data_offsets":[0,0]}}`, "long-value")),
    );
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/tensor "a": shape must be an array of non-negative integers, got \[7,7,7/);
    expect(e.message.length).toBeLessThan(1000);
  });
});

describe("the 100 MB bound on the header length, checked before anything is allocated for it", () => {
  /** A sparse file (no disk used) of `size` bytes whose length prefix says `headerLength`. */
  function sparse(size: number, headerLength: bigint, tag: string): string {
    const path = join(tempDir(tag), `${tag}.safetensors`);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(headerLength);
    writeFileSync(path, prefix);
    truncateSync(path, size);
    return path;
  }

  /** Every Buffer allocation of 1 MB or more made while `fn` runs. */
  function largeAllocations(fn: () => void): number[] {
    const sizes: number[] = [];
    for (const name of ["alloc", "allocUnsafe", "allocUnsafeSlow"] as const) {
      const original = Buffer[name] as (size: number, ...rest: unknown[]) => Buffer;
      vi.spyOn(Buffer, name).mockImplementation(((size: number, ...rest: unknown[]) => {
        if (size >= 1_000_000) sizes.push(size);
        return original.call(Buffer, size, ...rest);
      }) as never);
    }
    try {
      fn();
    } finally {
      vi.restoreAllMocks();
    }
    return sizes;
  }

  it("a header length of 100,000,001 bytes in a file that holds them is refused naming the limit, without allocating them", () => {
    const path = sparse(8 + 100_000_001 + 64, 100_000_001n, "over-cap");
    let e: Error | undefined;
    const sizes = largeAllocations(() => (e = caught(() => SafetensorsFile.open(path))));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e!.message).toContain(`${path}: header length 100000001 exceeds the 100 MB limit`);
    expect(sizes).toEqual([]);
  });

  it("a length far past the end of a small file (up to 2^64 - 1) is refused without allocating it", () => {
    for (const length of [2n ** 64n - 1n, 2n ** 53n, 4_000_000_000n, 100_000_001n]) {
      const path = sparse(4096, length, "past-end");
      let e: Error | undefined;
      const sizes = largeAllocations(() => (e = caught(() => SafetensorsFile.open(path))));
      expect(e, String(length)).toBeInstanceOf(CheckpointError);
      expect(e!.message).toContain(`${path}: header length ${length} goes past the end of the 4096-byte file`);
      expect(sizes).toEqual([]);
    }
  });

  it("exactly 100,000,000 bytes is within the bound: that header is read (and then found not to be JSON)", () => {
    const path = sparse(8 + 100_000_000, 100_000_000n, "at-cap");
    let e: Error | undefined;
    const sizes = largeAllocations(() => (e = caught(() => SafetensorsFile.open(path))));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e!.message).toMatch(/not valid UTF-8 JSON/);
    expect(sizes).toContain(100_000_000);
  });
});

describe.skipIf(!HAVE_REFERENCE)("a diffusers folder's JSON files", () => {
  function folderWith(relative: string, replace: (path: string) => void): string {
    const dir = join(tempDir("folder"), "sd15-tiny");
    cpSync(ref("models/sd15-tiny"), dir, { recursive: true });
    rmSync(join(dir, relative));
    replace(join(dir, relative));
    return dir;
  }

  it("a config nested 5,000 deep gives CheckpointError naming the file and the limit", () => {
    for (const file of ["unet/config.json", "model_index.json", "scheduler/scheduler_config.json"]) {
      const dir = folderWith(file, (p) => writeFileSync(p, `{"x":${deep(5000)}}`));
      const e = caught(() => openCheckpoint(dir));
      expect(e, file).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(join(dir, file));
      expect(e.message).toMatch(/nested more than 64 levels/);
    }
  });

  it("a tokenizer vocab.json or generation_config.json nested 5,000 deep gives InputError naming the file and the limit", async () => {
    const vocab = folderWith("tokenizer/vocab.json", (p) => writeFileSync(p, `{"a":${deep(5000)}}`));
    const e = await ClipTokenizer.load(join(vocab, "tokenizer")).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(e).toBeInstanceOf(InputError);
    expect(e!.message).toContain(`${join(vocab, "tokenizer", "vocab.json")}: JSON nested more than 64 levels deep`);
    const generation = folderWith("model_index.json", (p) => cpSync(ref("models/sd15-tiny/model_index.json"), p));
    writeFileSync(join(generation, "generation_config.json"), `{"guidance_scale":${deep(5000)}}`);
    const g = caught(() => readGenerationConfig([generation]));
    expect(g).toBeInstanceOf(InputError);
    expect(g.message).toContain(`${join(generation, "generation_config.json")}: JSON nested more than 64 levels deep`);
  });

  it("a folder where config.json should be is named as a folder", () => {
    const dir = folderWith("vae/config.json", (p) => mkdirSync(p));
    const e = caught(() => openCheckpoint(dir));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toContain(`${join(dir, "vae/config.json")} is a folder, not a regular file`);
  });
});
