import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { InternalError } from "../errors.js";
import type { ExternalSegment } from "../onnx/serialize.js";
import { expandInt8Into, expandInto, type Int8Format, type StoredFormat } from "./compact-weights.js";
import { halfConverter, type HalfConverter } from "./half-simd.js";

/** Stored bytes converted per round: bounded memory whatever the tensor. */
const CHUNK = 4 * 2 ** 20;

/**
 * A cache entry's weights file read back as the fp32 tensors the graph references (compact-weights.ts: fp16 and
 * bf16 are expanded exactly, int8 values multiplied by their scales, fp32 copied), one segment at a time, through
 * buffers of its own.
 */
export class StoredTensors {
  private readonly fd: number;
  private readonly size: number;
  // Halves go through WebAssembly SIMD where there is one (about twice as fast), the rest through expandInto.
  private readonly simd: HalfConverter | undefined = halfConverter(CHUNK);
  private readonly input: Uint8Array;
  private readonly outBytes: Uint8Array;
  private readonly outValues: Float32Array;

  constructor(readonly path: string) {
    this.fd = openSync(path, "r");
    try {
      this.size = fstatSync(this.fd).size;
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
    this.input = this.simd?.input ?? new Uint8Array(CHUNK);
    this.outBytes = this.simd?.output ?? new Uint8Array(2 * CHUNK);
    this.outValues = new Float32Array(this.outBytes.buffer, this.outBytes.byteOffset, CHUNK / 2);
  }

  /**
   * Calls `take` with the segment's fp32 bytes in order, a chunk at a time (`at`: the chunk's byte offset in the
   * tensor); each chunk is valid until the next call. `fileBytes` is the size of the fp32 file the segments rebuild.
   */
  forEachChunk(seg: ExternalSegment, fileBytes: number, take: (bytes: Uint8Array, at: number) => void): void {
    const format = storedFormat(seg.format);
    if (format === "i8-rows" || format === "i8-cols") {
      this.forEachInt8Chunk(format, seg, fileBytes, take);
      return;
    }
    const size = format === "f32" ? 4 : 2;
    if (
      seg.storedLength * (4 / size) !== seg.length ||
      seg.offset + seg.length > fileBytes ||
      seg.storedOffset + seg.storedLength > this.size ||
      seg.length % 4 !== 0
    ) {
      throw this.damaged(seg);
    }
    for (let done = 0; done < seg.storedLength; ) {
      const n = Math.min(CHUNK, seg.storedLength - done);
      readFully(this.fd, this.input, n, seg.storedOffset + done);
      const out = format === "f32" ? this.input.subarray(0, n) : this.outBytes.subarray(0, n * 2);
      const count = n / size;
      const vectorized = format === "f16" && this.simd ? count - (count % 8) : 0;
      if (vectorized > 0) this.simd!.convert(vectorized);
      if (format !== "f32" && vectorized < count)
        expandInto(format, this.input.subarray(vectorized * size, n), this.outValues.subarray(vectorized, count));
      take(out, (done * 4) / size);
      done += n;
    }
  }

  /** forEachChunk for a segment stored as its scales then its int8 values. */
  private forEachInt8Chunk(
    format: Int8Format,
    seg: ExternalSegment,
    fileBytes: number,
    take: (bytes: Uint8Array, at: number) => void,
  ): void {
    const count = seg.length / 4;
    const scaleCount = (seg.storedLength - count) / 4;
    if (
      !Number.isInteger(count) ||
      !Number.isInteger(scaleCount) ||
      scaleCount < 1 ||
      count % scaleCount !== 0 ||
      seg.offset + seg.length > fileBytes ||
      seg.storedOffset + seg.storedLength > this.size
    ) {
      throw this.damaged(seg);
    }
    const scales = new Float32Array(scaleCount);
    readFully(this.fd, new Uint8Array(scales.buffer), 4 * scaleCount, seg.storedOffset);
    const q = new Int8Array(this.input.buffer, this.input.byteOffset, this.input.byteLength);
    // As many values a round as the output buffer holds as fp32.
    const step = Math.min(this.outValues.length, q.length);
    for (let done = 0; done < count; ) {
      const n = Math.min(step, count - done);
      readFully(this.fd, this.input, n, seg.storedOffset + 4 * scaleCount + done);
      expandInt8Into(format, scales, count, q.subarray(0, n), done, this.outValues.subarray(0, n));
      take(this.outBytes.subarray(0, 4 * n), 4 * done);
      done += n;
    }
  }

  private damaged(seg: ExternalSegment): InternalError {
    return new InternalError(
      `${this.path}: a segment [${seg.storedOffset}, +${seg.storedLength}] (${seg.format}) does not fit the weights file; the cache entry is damaged`,
    );
  }

  /** The segment's fp32 values written into `values` (exactly its length). */
  readInto(seg: ExternalSegment, fileBytes: number, values: Float32Array): void {
    if (values.byteLength !== seg.length)
      throw new InternalError(`${this.path}: a tensor of ${seg.length} bytes read into ${values.byteLength}`);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.forEachChunk(seg, fileBytes, (chunk, at) => bytes.set(chunk, at));
  }

  close(): void {
    closeSync(this.fd);
  }
}

function storedFormat(format: string): StoredFormat {
  if (format === "raw" || format === "f32") return "f32";
  if (format === "f16" || format === "bf16" || format === "i8-rows" || format === "i8-cols") return format;
  throw new InternalError(`unknown stored weights format "${format}"; the cache entry is from another version`);
}

function readFully(fd: number, buf: Uint8Array, n: number, position: number): void {
  for (let done = 0; done < n; ) {
    const got = readSync(fd, buf, done, n - done, position + done);
    if (got === 0) throw new InternalError("the cache entry's weights file ended early");
    done += got;
  }
}

export function writeFully(fd: number, buf: Uint8Array, position: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, position + done);
}
