import { CheckpointError, InternalError } from "../errors.js";
import { jsonTooDeep, MAX_JSON_DEPTH } from "../json-depth.js";
import { openRegularFile } from "../regular-file.js";
import { type ByteSource, fileSource, memorySource } from "./byte-source.js";
import { bf16ToF32, f16Table, f16ToF32 } from "./half.js";

/** Element types of the safetensors format with their size in bytes. */
export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;
export type Dtype = keyof typeof DTYPE_SIZES;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data section. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute file offset where tensor data starts (8 + header length). */
  readonly dataStart: number;
}

/** The reference implementation refuses headers above 100 MB; so do we, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * More tensors than any checkpoint holds (SD1.5 with its EMA copy has about 2,000, a full SDXL about 2,500, the
 * largest single files tens of thousands), and few enough that parsing and checking them all takes well under a
 * second. A 99 MB header naming 1.7 M tensors took 21 s and 1.9 GB before its error.
 */
export const MAX_TENSORS = 100_000;

/**
 * Commas outside strings, i.e. values after the first of each array and object: a tensor's entry has 3 or 4 (and
 * one before it), metadata one per entry. JSON.parse pays for every value before validation can refuse it (a
 * 98 MB shape of 49 M entries: 6 s and 900 MB), so the count is bounded too, at 16 per tensor allowed.
 */
export const MAX_HEADER_VALUES = 16 * MAX_TENSORS;

const METADATA_KEY = "__metadata__";

/**
 * Validates a safetensors header. `headerBytes` is the JSON text (without the 8-byte length prefix) and
 * `dataBytes` is the size of the data section that follows it. Throws CheckpointError naming the tensor.
 * Nesting, the tensor count and the number of values are bounded on the text before anything is parsed.
 */
export function parseHeader(
  headerBytes: Uint8Array,
  dataBytes: number,
  source: string,
): Omit<SafetensorsHeader, "dataStart"> {
  // The counts first: they stop early on a header that is too big, where the depth scan would read all of it.
  const counts = countHeader(headerBytes);
  if (counts.tensors > MAX_TENSORS) {
    throw new CheckpointError(
      `${source}: the safetensors header names more than ${MAX_TENSORS} tensors, far more than any checkpoint has; the file is corrupt or not a checkpoint`,
    );
  }
  if (counts.values > MAX_HEADER_VALUES) {
    throw new CheckpointError(
      `${source}: the safetensors header holds more than ${MAX_HEADER_VALUES} values (a checkpoint's has about 5 per tensor); the file is corrupt or not a checkpoint`,
    );
  }
  if (jsonTooDeep(headerBytes, MAX_JSON_DEPTH)) {
    throw new CheckpointError(
      `${source}: the safetensors header is nested more than ${MAX_JSON_DEPTH} levels deep (a real one has 3); the file is corrupt or not a .safetensors file`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new CheckpointError(
      `${source}: the safetensors header is not valid UTF-8 JSON (${(e as Error).message}); the file is corrupt or not a .safetensors file`,
    );
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new CheckpointError(
      `${source}: the safetensors header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (
        raw === null ||
        typeof raw !== "object" ||
        Array.isArray(raw) ||
        Object.values(raw).some((v) => typeof v !== "string")
      ) {
        throw new CheckpointError(`${source}: __metadata__ must be an object of string values`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    tensors.set(name, parseEntry(name, raw, dataBytes, source));
  }
  // JSON.parse keeps the last of duplicate keys silently; the counts come from the raw text instead.
  const hasMetadata = Object.hasOwn(json, METADATA_KEY);
  if (tensors.size + (hasMetadata ? 1 : 0) !== counts.tensors + counts.metadata) {
    throw new CheckpointError(`${source}: the safetensors header names a tensor twice; the file is corrupt`);
  }
  checkOverlaps([...tensors.values()], source);
  return { tensors, metadata };
}

function parseEntry(name: string, raw: unknown, dataBytes: number, source: string): TensorInfo {
  const where = `${source}: tensor "${name}"`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw new CheckpointError(`${where}: entry must be an object with dtype, shape and data_offsets`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  // hasOwn, not `in`: names like "toString" or "constructor" are on every object's prototype.
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_SIZES, dtype)) {
    throw new CheckpointError(
      `${where}: unknown dtype ${brief(dtype)}; expected one of ${Object.keys(DTYPE_SIZES).join(", ")}`,
    );
  }
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new CheckpointError(`${where}: shape must be an array of non-negative integers, got ${brief(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0)) {
    throw new CheckpointError(
      `${where}: data_offsets must be [begin, end] non-negative integers, got ${brief(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new CheckpointError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes) {
    throw new CheckpointError(
      `${where}: data_offsets [${begin}, ${end}] go past the end of the data (${dataBytes} bytes); the file is truncated`,
    );
  }
  const elements = shape.reduce((a: number, b: number) => a * b, 1);
  const expected = elements * DTYPE_SIZES[dtype as Dtype];
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    throw new CheckpointError(
      `${where}: shape ${brief(shape)} of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as Dtype, shape: shape as number[], begin, end };
}

function checkOverlaps(infos: TensorInfo[], source: string): void {
  const sorted = infos.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) {
      throw new CheckpointError(
        `${source}: tensors "${sorted[i - 1]!.name}" and "${sorted[i]!.name}" overlap in the data section; the file is corrupt`,
      );
    }
  }
}

/** A value for an error message: its JSON, cut short (a shape can hold a million entries). */
function brief(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}

const METADATA_KEY_BYTES = new TextEncoder().encode(`${METADATA_KEY}"`);

/**
 * Counts on the raw text, in one pass that never allocates: the keys of the top-level object (tensors, and
 * __metadata__ apart) and the values (commas outside strings). It stops once a count passes its bound, so
 * refusing a 99 MB header costs a fraction of its scan. Text that is not JSON gets counts too; parsing then
 * reports the syntax error.
 */
function countHeader(bytes: Uint8Array): { tensors: number; metadata: number; values: number } {
  let depth = 0,
    tensors = 0,
    metadata = 0,
    values = 0,
    inString = false,
    escaped = false,
    expectKey = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      if (depth === 1 && expectKey) {
        expectKey = false;
        if (startsWith(bytes, i + 1, METADATA_KEY_BYTES)) metadata++;
        else if (++tensors > MAX_TENSORS) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c) {
      if (++values > MAX_HEADER_VALUES) break;
      if (depth === 1) expectKey = true;
    }
  }
  return { tensors, metadata, values };
}

function startsWith(bytes: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (at + prefix.length > bytes.length) return false;
  for (let j = 0; j < prefix.length; j++) if (bytes[at + j] !== prefix[j]) return false;
  return true;
}

/**
 * A .safetensors file opened for lazy reading: the header is parsed and validated at open, tensor bytes are
 * read from disk only when asked for, so a multi-GB checkpoint never sits in memory twice. `fromBytes` reads the
 * same format from memory (a LoRA handed over as a buffer), with the same checks.
 */
export class SafetensorsFile implements SafetensorsHeader {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly dataStart: number;
  readonly size: number;

  private constructor(
    readonly path: string,
    private readonly source: ByteSource,
    size: number,
    header: Omit<SafetensorsHeader, "dataStart">,
    dataStart: number,
  ) {
    this.size = size;
    this.tensors = header.tensors;
    this.metadata = header.metadata;
    this.dataStart = dataStart;
  }

  static open(path: string): SafetensorsFile {
    if (/\.(ckpt|pt|pth|bin)$/i.test(path)) refusePickle(path);
    const { fd, size } = openRegularFile(
      path,
      CheckpointError,
      "check the path: a .safetensors checkpoint is one regular file (a diffusers model is opened as its folder)",
    );
    return SafetensorsFile.read(path, fileSource(path, fd), size);
  }

  /** The same format from bytes in memory; `name` stands for the file in messages. */
  static fromBytes(bytes: Uint8Array, name: string): SafetensorsFile {
    return SafetensorsFile.read(name, memorySource(bytes, name), bytes.length);
  }

  private static read(path: string, source: ByteSource, size: number): SafetensorsFile {
    try {
      if (size < 8)
        throw new CheckpointError(
          `${path}: ${size} bytes is too short for a safetensors file (at least 8 bytes of header length)`,
        );
      const prefix = Buffer.alloc(8);
      source.read(prefix, 0);
      const headerLength = prefix.readBigUInt64LE(0);
      if (headerLength > BigInt(size - 8)) {
        if (looksLikePickle(source, prefix, size)) refusePickle(path);
        throw new CheckpointError(
          `${path}: header length ${headerLength} goes past the end of the ${size}-byte file; the file is truncated or not a .safetensors file`,
        );
      }
      if (headerLength > BigInt(MAX_HEADER_BYTES))
        throw new CheckpointError(
          `${path}: header length ${headerLength} exceeds the 100 MB limit; the file is corrupt`,
        );
      const n = Number(headerLength);
      if (n < 2) throw new CheckpointError(`${path}: header length ${n} is too short for a JSON object`);
      const headerBytes = Buffer.alloc(n);
      source.read(headerBytes, 8);
      const header = parseHeader(headerBytes, size - 8 - n, path);
      return new SafetensorsFile(path, source, size, header, 8 + n);
    } catch (e) {
      source.close();
      throw e;
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** The stored bytes of a tensor, little-endian as in the file. */
  bytes(name: string): Buffer {
    const t = this.info(name);
    const buf = Buffer.alloc(t.end - t.begin);
    this.source.read(buf, this.dataStart + t.begin);
    return buf;
  }

  /**
   * A floating-point tensor converted to fp32: a fresh array, or `into` (exactly the tensor's size) filled and
   * returned. Into `into`, the stored bytes are read into its own memory (its upper end) and widened in place, so
   * the read costs no memory of its own.
   */
  float32(name: string, into?: Float32Array): Float32Array {
    const t = this.info(name);
    const what = `${this.path}: tensor "${name}"`;
    if (!into) return toFloat32(this.bytes(name), t.dtype, what);
    return readFloat32Into(this.source, this.dataStart + t.begin, t.dtype, t.shape, into, what);
  }

  /** An integer tensor as int64 values (inputs like token ids). */
  int64(name: string): BigInt64Array {
    const t = this.info(name);
    const b = this.bytes(name);
    const n = t.shape.reduce((a, c) => a * c, 1);
    switch (t.dtype) {
      case "I64":
        return new BigInt64Array(b.buffer, b.byteOffset, n).slice();
      case "I32":
        return BigInt64Array.from(new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)), (v) =>
          BigInt(v),
        );
      default:
        throw new CheckpointError(`${this.path}: tensor "${name}" is ${t.dtype}, expected an integer dtype`);
    }
  }

  close(): void {
    this.source.close();
  }
}

const FLOAT_SIZE: Partial<Record<Dtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/**
 * Reads the contiguous stored values of a float tensor at `position` into `into` (exactly the tensor's size) as
 * fp32: the stored bytes go into its own memory (its upper end) and are widened in place, so the read costs no
 * memory of its own. Shared by every lazily read format (safetensors, torch.save archives).
 */
export function readFloat32Into(
  source: ByteSource,
  position: number,
  dtype: Dtype,
  shape: readonly number[],
  into: Float32Array,
  what: string,
): Float32Array {
  const count = shape.reduce((a, c) => a * c, 1);
  if (into.length !== count)
    throw new InternalError(`${what} has ${count} values, not the ${into.length} of the buffer given for it`);
  const size = FLOAT_SIZE[dtype];
  if (size === undefined || size > 4) {
    const stored = Buffer.alloc(count * DTYPE_SIZES[dtype]);
    source.read(stored, position);
    into.set(toFloat32(stored, dtype, what));
    return into;
  }
  const stored = new Uint8Array(into.buffer, into.byteOffset + into.byteLength - count * size, count * size);
  source.read(stored, position);
  if (dtype === "F16") widenHalvesInPlace(stored, into, f16Table());
  else if (dtype === "BF16") widenBfloatsInPlace(stored, into);
  return into;
}

/**
 * Widens the 16-bit values at the upper end of `out`'s memory (`stored`) into `out`, first to last: value i is read
 * (at byte 2n + 2i of n values) before float i is written (bytes 4i to 4i + 3), which never reaches a value not yet read.
 */
function widenHalvesInPlace(stored: Uint8Array, out: Float32Array, table: Float32Array): void {
  const halves = new Uint16Array(stored.buffer, stored.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) out[i] = table[halves[i]!]!;
}

function widenBfloatsInPlace(stored: Uint8Array, out: Float32Array): void {
  const halves = new Uint16Array(stored.buffer, stored.byteOffset, out.length);
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) bits[i] = halves[i]! << 16;
}

/** Converts little-endian stored bytes of a float dtype to a fresh Float32Array. */
export function toFloat32(b: Uint8Array, dtype: Dtype, what: string): Float32Array {
  // Typed-array views need aligned offsets. Copy through Uint8Array.prototype.slice: Buffer#slice is a view, not a copy.
  const aligned = b.byteOffset % 8 === 0 ? b : Uint8Array.prototype.slice.call(b);
  switch (dtype) {
    case "F32":
      return new Float32Array(aligned.buffer, aligned.byteOffset, b.length >> 2).slice();
    case "F16":
      return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, b.length >> 1));
    case "BF16":
      return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, b.length >> 1));
    case "F64":
      return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, b.length >> 3));
    default:
      throw new CheckpointError(`${what} is ${dtype}, expected a floating-point dtype (F32, F16, BF16, F64)`);
  }
}

/**
 * A pickle renamed .safetensors (its first 8 bytes read as a header length past the end of the file): protocol 2
 * and later start with 0x80 and the protocol number, torch.save's zip format with "PK". A .safetensors file cut
 * short can start the same way (a header of 99,968 bytes is 80 86 01 00 ...), but its header text begins with
 * "{" right after those 8 bytes, and then it is called truncated, not a pickle.
 */
function looksLikePickle(source: ByteSource, prefix: Buffer, size: number): boolean {
  const pickle = prefix[0] === 0x80 && prefix[1]! >= 2 && prefix[1]! <= 5;
  const zip = prefix.subarray(0, 2).toString("latin1") === "PK";
  if (!pickle && !zip) return false;
  if (size <= 8) return false;
  const next = Buffer.alloc(1);
  source.read(next, 8);
  return next[0] !== 0x7b;
}

function refusePickle(path: string): never {
  throw new CheckpointError(
    `${path}: pickle checkpoints (.ckpt/.pt/.bin) can run arbitrary code when loaded and are never unpickled here. ` +
      `Convert it once to .safetensors in a trusted Python environment (for example: ` +
      `python -c "import torch,safetensors.torch as s; sd=torch.load('in.ckpt',map_location='cpu',weights_only=True); s.save_file(sd.get('state_dict',sd),'out.safetensors')"), ` +
      `or download the .safetensors version of the model`,
  );
}
