import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { f32ToF16 } from "../../src/weights/half.js";
import type { Dtype } from "../../src/weights/safetensors.js";

/** A tensor to write: raw little-endian bytes with their dtype and shape. */
export interface RawTensor {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  data: Uint8Array;
}

/** A minimal safetensors encoder for test files (no padding, tensors laid out in the order given). */
export function encodeSafetensors(tensors: readonly RawTensor[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  return encodeRaw(
    JSON.stringify(header),
    tensors.map((t) => t.data),
  );
}

/** Length prefix + header text + data, with the header text given verbatim (for malformed headers). */
export function encodeRaw(headerText: string, data: readonly Uint8Array[] = []): Buffer {
  const json = Buffer.from(headerText, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, ...data]);
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function f16Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(f32ToF16(Float32Array.from(values)).buffer);
}

export function u16Bytes(bits: readonly number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(bits).buffer);
}

const created: string[] = [];

export function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `diffuse-${tag}-`));
  created.push(dir);
  return dir;
}

/** Removes the folders tempDir made in this test file (call from afterAll). */
export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function writeSafetensors(
  path: string,
  tensors: readonly RawTensor[],
  metadata?: Record<string, string>,
): string {
  writeFileSync(path, encodeSafetensors(tensors, metadata));
  return path;
}

/** The error `fn` throws, to assert on its class and message together; fails when it throws nothing. */
export function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}
