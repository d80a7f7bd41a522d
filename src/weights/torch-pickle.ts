import { CheckpointError, UnsafePickleError } from "../errors.js";
import { openRegularFile } from "../regular-file.js";
import { type ByteSource, fileSource, memorySource } from "./byte-source.js";
import { describe, type PickleHooks, PickleGlobal, PickleTuple, readPickle } from "./pickle-machine.js";
import { f16ToF32 } from "./half.js";
import { DTYPE_SIZES, type Dtype, MAX_TENSORS, readFloat32Into, toFloat32 } from "./safetensors.js";
import { readZipDirectory, type ZipEntry } from "./zip-archive.js";

/**
 * PyTorch's own files (`torch.save`: .pt, .pth, .ckpt, .bin) read without unpickling them. Two containers exist:
 * the zip archive of PyTorch 1.6 and later (`<name>/data.pkl` plus one entry per storage, `<name>/data/<key>`),
 * and the legacy stream of earlier versions (a magic number, two small pickles, the object's pickle, the list of
 * storage keys, then each storage's bytes after its element count), in which old ESRGAN models were saved. The
 * object's pickle is read by pickle-machine.ts with the policy below: only torch's tensor rebuild functions,
 * its storage and dtype names, and OrderedDict are allowed, exactly what a dictionary of tensors needs, and
 * everything else is refused with its name (UnsafePickleError). Nothing is executed. Nested dictionaries are
 * flattened to dotted names ("params_ema.conv_first.weight"); tensor bytes are read lazily, as safetensors' are.
 */

/** data.pkl of an SDXL checkpoint is about 300 KB; 64 MiB leaves room for any state dict and bounds the memory. */
export const MAX_PICKLE_BYTES = 64 * 2 ** 20;
/** Nesting of dicts and lists in a state dict: 1 to 4 (a checkpoint's "state_dict", a trainer's wrappers). */
const MAX_NESTING = 32;

const STORAGE_DTYPES: Readonly<Record<string, Dtype>> = {
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  DoubleStorage: "F64",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
  UntypedStorage: "U8",
};
const TORCH_DTYPES: Readonly<Record<string, Dtype>> = {
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  float64: "F64",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};
/**
 * Globals that stand for themselves only, as names: allowed where a value is expected (never called, built or
 * imported; REDUCE or BUILD on one is refused like any other call). PyTorch Lightning before 1.5 saved a
 * checkpoint's callback states keyed by the callback's class, so SD 1.x training checkpoints (sd-v1-4.ckpt and
 * the files fine-tuned from it) hold `{ModelCheckpoint: {"best_model_score": tensor, "dirpath": ...}}` beside
 * their state_dict: the class is a dict key, read here as its dotted name.
 */
const NAME_ONLY_GLOBALS = new Set(["pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"]);
/**
 * numpy scalars, read as the numbers they hold: training scripts saved a checkpoint's "global_step" or a callback's
 * score as numpy.int64 / numpy.float64, which pickle as numpy's `scalar(dtype(code), raw bytes)` (the bytes through
 * `_codecs.encode(text, "latin1")` at pickle protocol 2, torch.save's). AUTOMATIC1111's loader allows the same three
 * globals; here they are decoded as data, never imported or called.
 */
const NUMPY_SCALARS = new Set(["numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"]);
/** numpy's type codes of the scalars read, and their byte sizes. */
const NUMPY_CODES: Readonly<Record<string, number>> = {
  b1: 1,
  i1: 1,
  u1: 1,
  i2: 2,
  u2: 2,
  f2: 2,
  i4: 4,
  u4: 4,
  f4: 4,
  i8: 8,
  u8: 8,
  f8: 8,
};

/** numpy.dtype(code) with the byte order its pickled state gives ("<" little, ">" big; "|" and "=" mean native). */
class NumpyDtype {
  littleEndian = true;
  constructor(readonly code: string) {}
}

const REBUILDERS = new Set([
  "_rebuild_tensor",
  "_rebuild_tensor_v2",
  "_rebuild_tensor_v3",
  "_rebuild_parameter",
  "_rebuild_parameter_with_state",
]);

/** A storage named by a persistent id: its bytes are the archive entry (or legacy record) with this key. */
class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: Dtype,
    readonly numel: number,
  ) {}
  get bytes(): number {
    return this.numel * DTYPE_SIZES[this.dtype];
  }
}

/** A tensor as torch rebuilds it: a strided view of a storage (offset and strides in elements of its dtype). */
class TorchTensor {
  constructor(
    readonly storage: StorageRef,
    readonly dtype: Dtype,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

export interface TorchTensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

/** The allowed globals and steps; an instance per file, since storages are deduplicated by key. */
class TorchPolicy implements PickleHooks {
  readonly storages = new Map<string, StorageRef>();
  tensors = 0;
  constructor(private readonly origin: string) {}

  private refuse(name: string, what: string): never {
    throw new UnsafePickleError(
      `${this.origin}: the pickle ${what}, which a dictionary of tensors never needs; it could run code if ` +
        "unpickled, so the file is refused (nothing was executed). Only torch's tensor rebuild functions, storages " +
        "and collections.OrderedDict are allowed (with numpy's scalars as numbers, and PyTorch Lightning's ModelCheckpoint as a name only). If the file is yours, save model.state_dict() instead, or " +
        "convert it to .safetensors in a trusted Python environment",
      name,
    );
  }

  private corrupt(what: string): never {
    throw new CheckpointError(`${this.origin}: ${what}; the file is corrupt or not a torch.save file`);
  }

  global(module: string, name: string): PickleGlobal {
    const allowed =
      (module === "torch._utils" && REBUILDERS.has(name)) ||
      (module === "torch" && (Object.hasOwn(STORAGE_DTYPES, name) || Object.hasOwn(TORCH_DTYPES, name))) ||
      (module === "collections" && name === "OrderedDict") ||
      NUMPY_SCALARS.has(`${module}.${name}`) ||
      (module === "numpy" && name === "dtype") ||
      (module === "_codecs" && name === "encode") ||
      NAME_ONLY_GLOBALS.has(`${module}.${name}`);
    if (!allowed) this.refuse(`${module}.${name}`, `imports ${module}.${name}`);
    return new PickleGlobal(module, name);
  }

  call(callable: unknown, args: readonly unknown[]): unknown {
    if (!(callable instanceof PickleGlobal))
      this.refuse(`REDUCE ${describe(callable)}`, `calls a ${describe(callable)}`);
    const fn = (callable as PickleGlobal).qualified;
    switch (fn) {
      case "collections.OrderedDict":
        return this.orderedDict(args);
      case "torch._utils._rebuild_tensor":
      case "torch._utils._rebuild_tensor_v2":
      case "torch._utils._rebuild_tensor_v3": {
        const [storage, offset, size, stride] = args;
        if (!(storage instanceof StorageRef)) this.corrupt(`${fn} of a ${describe(storage)}, not a storage`);
        const s = storage as StorageRef;
        let dtype = s.dtype;
        if (fn.endsWith("_v3")) {
          const d = args[6];
          if (!(d instanceof PickleGlobal) || !Object.hasOwn(TORCH_DTYPES, d.name))
            this.corrupt(`${fn} with ${describe(d)} for a dtype`);
          dtype = TORCH_DTYPES[(d as PickleGlobal).name]!;
        }
        if (++this.tensors > MAX_TENSORS)
          this.corrupt(`more than ${MAX_TENSORS} tensors, far more than any checkpoint has`);
        return this.tensor(s, dtype, offset, size, stride, fn);
      }
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state":
        if (!(args[0] instanceof TorchTensor)) this.corrupt(`${fn} of a ${describe(args[0])}, not a tensor`);
        return args[0];
      case "numpy.dtype": {
        const code = args[0];
        if (typeof code !== "string" || !Object.hasOwn(NUMPY_CODES, code))
          throw new CheckpointError(
            `${this.origin}: a numpy scalar of dtype ${typeof code === "string" ? JSON.stringify(code) : describe(code)} ` +
              "(only booleans, integers and floats are read); " +
              "save the value as a plain Python number, or convert the file to .safetensors",
          );
        return new NumpyDtype(code);
      }
      case "_codecs.encode": {
        // Protocol 2's bytes: the text of one char per byte, encoded back as latin1.
        const [text, encoding] = args;
        if (typeof text !== "string" || (encoding !== "latin1" && encoding !== "latin-1"))
          this.corrupt(`_codecs.encode of ${describe(text)} as ${describe(encoding)}, not text as latin1`);
        if (/[^\x00-\xff]/.test(text as string)) this.corrupt("_codecs.encode of text that is not latin1");
        return Uint8Array.from(text as string, (c) => c.charCodeAt(0));
      }
      case "numpy.core.multiarray.scalar":
      case "numpy._core.multiarray.scalar":
        return this.numpyScalar(args);
      default:
        return this.refuse(`REDUCE ${fn}`, `calls ${fn}`);
    }
  }

  persistent(id: unknown): unknown {
    // ("storage", storage type, key, location, element count[, view metadata in the legacy format])
    const items = id instanceof PickleTuple ? id.items : [];
    const [tag, type, key, , numel] = items;
    if (tag !== "storage" || !(type instanceof PickleGlobal) || !Object.hasOwn(STORAGE_DTYPES, type.name))
      this.refuse(
        `persistent id ${typeof tag === "string" ? tag : describe(tag ?? id)}`,
        "loads a persistent id that is not a torch storage",
      );
    if (typeof key !== "string" || !Number.isSafeInteger(numel) || (numel as number) < 0)
      this.corrupt(`a storage id with key ${describe(key)} and size ${String(numel)}`);
    if (items.length === 6 && items[5] !== null)
      throw new CheckpointError(
        `${this.origin}: storage views of the legacy torch.save format are not read; re-save the file with a PyTorch of 1.6 or later`,
      );
    const dtype = STORAGE_DTYPES[(type as PickleGlobal).name]!;
    const known = this.storages.get(key as string);
    if (known) {
      if (known.dtype !== dtype || known.numel !== numel)
        this.corrupt(`storage "${key}" is declared twice with different types or sizes`);
      return known;
    }
    const ref = new StorageRef(key as string, dtype, numel as number);
    this.storages.set(ref.key, ref);
    return ref;
  }

  build(target: unknown, state: unknown): unknown {
    // A state dict's OrderedDict carries `_metadata` (module versions) as its __dict__: kept out, it is not a tensor.
    if (target instanceof Map && (state === null || state instanceof Map)) return target;
    // numpy.dtype's state: (version, byte order, ...).
    if (target instanceof NumpyDtype && state instanceof PickleTuple && typeof state.items[1] === "string") {
      const order = state.items[1];
      if (!["<", ">", "|", "="].includes(order)) this.corrupt(`a numpy dtype of byte order ${JSON.stringify(order)}`);
      target.littleEndian = order !== ">";
      return target;
    }
    return this.refuse(`BUILD ${describe(target)}`, `sets the state of a ${describe(target)} (BUILD)`);
  }

  /** numpy's scalar(dtype, raw bytes) as the number it holds (a bigint for a 64-bit integer past 2^53). */
  private numpyScalar(args: readonly unknown[]): number | bigint | boolean {
    const [dtype, raw] = args;
    if (!(dtype instanceof NumpyDtype) || !(raw instanceof Uint8Array) || raw.length !== NUMPY_CODES[dtype.code])
      this.corrupt(`a numpy scalar of ${describe(dtype)} from ${describe(raw)}`);
    const { code, littleEndian: le } = dtype as NumpyDtype;
    const v = new DataView((raw as Uint8Array).buffer, (raw as Uint8Array).byteOffset, (raw as Uint8Array).length);
    const exact = (b: bigint) =>
      b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    switch (code) {
      case "b1":
        return v.getUint8(0) !== 0;
      case "i1":
        return v.getInt8(0);
      case "u1":
        return v.getUint8(0);
      case "i2":
        return v.getInt16(0, le);
      case "u2":
        return v.getUint16(0, le);
      case "f2":
        return f16ToF32(Uint16Array.of(v.getUint16(0, le)))[0]!;
      case "i4":
        return v.getInt32(0, le);
      case "u4":
        return v.getUint32(0, le);
      case "f4":
        return v.getFloat32(0, le);
      case "i8":
        return exact(v.getBigInt64(0, le));
      case "u8":
        return exact(v.getBigUint64(0, le));
      default:
        return v.getFloat64(0, le);
    }
  }

  private orderedDict(args: readonly unknown[]): Map<unknown, unknown> {
    const d = new Map<unknown, unknown>();
    if (args.length === 0) return d;
    const pairs = args[0];
    if (args.length !== 1 || !Array.isArray(pairs)) this.corrupt("OrderedDict built from something not a list");
    for (const p of pairs as unknown[]) {
      const kv = p instanceof PickleTuple ? p.items : Array.isArray(p) ? p : [];
      if (kv.length !== 2 || (typeof kv[0] !== "string" && typeof kv[0] !== "number"))
        this.corrupt("OrderedDict built from something not (key, value) pairs");
      d.set(kv[0], kv[1]);
    }
    return d;
  }

  private tensor(
    s: StorageRef,
    dtype: Dtype,
    offset: unknown,
    size: unknown,
    stride: unknown,
    fn: string,
  ): TorchTensor {
    const ints = (v: unknown) =>
      v instanceof PickleTuple && v.items.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)
        ? (v.items as number[])
        : undefined;
    const shape = ints(size);
    const strides = ints(stride);
    if (
      !shape ||
      !strides ||
      shape.length !== strides.length ||
      !Number.isSafeInteger(offset) ||
      (offset as number) < 0
    )
      this.corrupt(`${fn} with size ${describe(size)}, stride ${describe(stride)} and offset ${String(offset)}`);
    return new TorchTensor(s, dtype, offset as number, shape!, strides!);
  }
}

interface StorageSpan {
  readonly dataOffset: number;
  readonly size: number;
}

/** A torch.save file opened for lazy reading of its tensors. */
export class TorchFile {
  readonly tensors: ReadonlyMap<string, TorchTensorInfo>;
  /** The other leaves (numbers, strings, booleans) under their dotted names: an embedding's "name", a "global_step". */
  readonly values: ReadonlyMap<string, unknown>;
  readonly metadata: Readonly<Record<string, string>> = {};
  private readonly views: ReadonlyMap<string, TorchTensor>;

  private constructor(
    readonly path: string,
    readonly size: number,
    private readonly source: ByteSource,
    root: unknown,
    private readonly spans: ReadonlyMap<string, StorageSpan>,
  ) {
    const views = new Map<string, TorchTensor>();
    const values = new Map<string, unknown>();
    flatten(root, "", 0, views, values, path);
    this.views = views;
    this.values = values;
    this.tensors = new Map([...views].map(([name, t]) => [name, { name, dtype: t.dtype, shape: t.shape }]));
    for (const [name, t] of views) this.checkExtent(name, t);
  }

  static open(path: string): TorchFile {
    const { fd, size } = openRegularFile(
      path,
      CheckpointError,
      "check the path: a PyTorch weights file (.pt, .pth, .ckpt, .bin) is one regular file",
    );
    return TorchFile.read(path, fileSource(path, fd), size);
  }

  /** The same from bytes in memory; `name` stands for the file in messages. */
  static fromBytes(bytes: Uint8Array, name: string): TorchFile {
    return TorchFile.read(name, memorySource(bytes, name), bytes.length);
  }

  private static read(path: string, source: ByteSource, size: number): TorchFile {
    try {
      if (size < 4) throw new CheckpointError(`${path}: ${size} bytes is too short for a torch.save file`);
      const head = Buffer.alloc(Math.min(size, 262));
      source.read(head, 0);
      if (head.subarray(0, 4).toString("latin1") === "PK\x03\x04") return TorchFile.readZip(path, source, size);
      if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return TorchFile.readLegacy(path, source, size);
      if (size >= 262 && head.subarray(257, 262).toString("latin1") === "ustar")
        throw new CheckpointError(
          `${path}: the tar format of PyTorch before 0.4 is not read; re-save the file with a recent PyTorch or convert it to .safetensors`,
        );
      throw new CheckpointError(
        `${path}: not a torch.save file (neither a zip archive nor a pickle); the file is corrupt or of another kind`,
      );
    } catch (e) {
      source.close();
      throw e;
    }
  }

  private static readZip(path: string, source: ByteSource, size: number): TorchFile {
    const entries = readZipDirectory(source, size, path);
    const pickles = [...entries.keys()].filter((n) => n === "data.pkl" || n.endsWith("/data.pkl"));
    if (pickles.length !== 1)
      throw new CheckpointError(
        `${path}: a torch.save archive holds one <name>/data.pkl, this one ${pickles.length}; the file is corrupt or another kind of zip`,
      );
    const prefix = pickles[0]!.slice(0, -"data.pkl".length);
    const order = entries.get(`${prefix}byteorder`);
    if (order) {
      const b = Buffer.alloc(Math.min(order.size, 16));
      source.read(b, order.dataOffset);
      if (b.toString("latin1") !== "little")
        throw new CheckpointError(`${path}: tensors saved in ${b.toString("latin1")}-endian byte order are not read`);
    }
    const pkl = entries.get(pickles[0]!)!;
    const bytes = readBounded(source, pkl, path);
    const policy = new TorchPolicy(path);
    const { value } = readPickle(bytes, policy, path);
    const spans = new Map<string, StorageSpan>();
    for (const s of policy.storages.values()) {
      const entry: ZipEntry | undefined = entries.get(`${prefix}data/${s.key}`);
      if (!entry) throw new CheckpointError(`${path}: storage "${s.key}" has no entry ${prefix}data/${s.key}`);
      if (entry.size !== s.bytes)
        throw new CheckpointError(
          `${path}: storage "${s.key}" holds ${s.numel} ${s.dtype} values (${s.bytes} bytes) but its entry has ${entry.size} bytes; the file is corrupt`,
        );
      spans.set(s.key, entry);
    }
    return new TorchFile(path, size, source, value, spans);
  }

  /**
   * The legacy stream: magic number, protocol version, system info, the object, the storage keys, then each
   * storage (in the order of the keys) as an int64 element count followed by its bytes.
   */
  private static readLegacy(path: string, source: ByteSource, size: number): TorchFile {
    const bytes = Buffer.alloc(Math.min(size, MAX_PICKLE_BYTES));
    source.read(bytes, 0);
    // The magic number, version, system info and key list are plain data: any global in them is refused too.
    const plain = new TorchPolicy(path);
    const magic = readPickle(bytes, plain, path);
    if (magic.value !== 0x1950a86a20f9469cfc6cn)
      throw new CheckpointError(
        `${path}: a pickle that is not a torch.save file (no torch magic number); only PyTorch's weights files are read`,
      );
    const protocol = readPickle(bytes, plain, path, undefined, magic.end);
    if (protocol.value !== 1001)
      throw new CheckpointError(`${path}: legacy torch.save protocol ${String(protocol.value)}, expected 1001`);
    const info = readPickle(bytes, plain, path, undefined, protocol.end);
    const little = info.value instanceof Map ? info.value.get("little_endian") : undefined;
    if (little !== true) throw new CheckpointError(`${path}: tensors saved big-endian are not read`);
    const policy = new TorchPolicy(path);
    const object = readPickle(bytes, policy, path, undefined, info.end);
    const keys = readPickle(bytes, plain, path, undefined, object.end);
    if (!Array.isArray(keys.value) || keys.value.some((k) => typeof k !== "string"))
      throw new CheckpointError(`${path}: the legacy storage key list is not a list of strings`);
    const spans = new Map<string, StorageSpan>();
    let at = keys.end;
    for (const key of keys.value as string[]) {
      const s = policy.storages.get(key);
      if (!s) throw new CheckpointError(`${path}: storage "${key}" is listed but no tensor uses it`);
      if (at + 8 > size)
        throw new CheckpointError(`${path}: storage "${key}" starts past the end; the file is truncated`);
      const count = Buffer.alloc(8);
      source.read(count, at);
      if (count.readBigInt64LE(0) !== BigInt(s.numel))
        throw new CheckpointError(
          `${path}: storage "${key}" records ${count.readBigInt64LE(0)} values where its tensors say ${s.numel}; the file is corrupt`,
        );
      if (at + 8 + s.bytes > size)
        throw new CheckpointError(`${path}: storage "${key}" goes past the end of the file; the file is truncated`);
      spans.set(key, { dataOffset: at + 8, size: s.bytes });
      at += 8 + s.bytes;
    }
    for (const s of policy.storages.values())
      if (!spans.has(s.key)) throw new CheckpointError(`${path}: storage "${s.key}" is missing from the file`);
    return new TorchFile(path, size, source, object.value, spans);
  }

  private checkExtent(name: string, t: TorchTensor): void {
    const elementSize = DTYPE_SIZES[t.dtype];
    let last = t.offset;
    for (let i = 0; i < t.shape.length; i++) {
      if (t.shape[i] === 0) return;
      last += (t.shape[i]! - 1) * t.stride[i]!;
    }
    const end = (last + 1) * elementSize;
    if (!Number.isSafeInteger(end) || end > t.storage.bytes)
      throw new CheckpointError(
        `${this.path}: tensor "${name}" of shape [${t.shape.join(",")}] at offset ${t.offset} reaches past its storage "${t.storage.key}" (${t.storage.bytes} bytes); the file is corrupt`,
      );
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TorchTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** The tensor's values, contiguous, in its dtype's little-endian bytes. */
  bytes(name: string): Buffer {
    this.info(name);
    const t = this.views.get(name)!;
    const span = this.spans.get(t.storage.key)!;
    const size = DTYPE_SIZES[t.dtype];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count === 0) return Buffer.alloc(0);
    if (isContiguous(t)) {
      const buf = Buffer.alloc(count * size);
      this.source.read(buf, span.dataOffset + t.offset * size);
      return buf;
    }
    // A strided view: read the storage range it spans and gather its elements in row-major order.
    const extent = t.shape.reduce((e, d, i) => e + (d - 1) * t.stride[i]!, 0) + 1;
    const range = Buffer.alloc(extent * size);
    this.source.read(range, span.dataOffset + t.offset * size);
    const out = Buffer.alloc(count * size);
    const index = new Array<number>(t.shape.length).fill(0);
    for (let n = 0; n < count; n++) {
      let at = 0;
      for (let i = 0; i < index.length; i++) at += index[i]! * t.stride[i]!;
      range.copy(out, n * size, at * size, at * size + size);
      for (let i = index.length - 1; i >= 0; i--) {
        if (++index[i]! < t.shape[i]!) break;
        index[i] = 0;
      }
    }
    return out;
  }

  /** A floating-point tensor as fp32 (into `into` when given, which must have its size). */
  float32(name: string, into?: Float32Array): Float32Array {
    const what = `${this.path}: tensor "${name}"`;
    const t = this.views.get(name);
    // A contiguous tensor (every one a state dict holds) is read straight into `into`, as from a safetensors file.
    if (into && t && isContiguous(t))
      return readFloat32Into(
        this.source,
        this.spans.get(t.storage.key)!.dataOffset + t.offset * DTYPE_SIZES[t.dtype],
        t.dtype,
        t.shape,
        into,
        what,
      );
    const values = toFloat32(this.bytes(name), this.info(name).dtype, what);
    if (!into) return values;
    if (into.length !== values.length)
      throw new CheckpointError(`${this.path}: tensor "${name}" has ${values.length} values, not ${into.length}`);
    into.set(values);
    return into;
  }

  close(): void {
    this.source.close();
  }
}

function isContiguous(t: TorchTensor): boolean {
  return t.shape.every((_, i) => t.shape[i] === 1 || t.stride[i] === contiguousStride(t.shape, i));
}

function contiguousStride(shape: readonly number[], i: number): number {
  let s = 1;
  for (let j = i + 1; j < shape.length; j++) s *= shape[j]!;
  return s;
}

function readBounded(source: ByteSource, entry: ZipEntry, path: string): Buffer {
  if (entry.size > MAX_PICKLE_BYTES)
    throw new CheckpointError(
      `${path}: ${entry.name} is ${entry.size} bytes, more than the ${MAX_PICKLE_BYTES} a state dict's pickle needs; the file holds more than tensors`,
    );
  const b = Buffer.alloc(entry.size);
  source.read(b, entry.dataOffset);
  return b;
}

/** Dotted names for every tensor and plain value under dicts, lists and tuples (bounded in depth: memo can loop). */
function flatten(
  v: unknown,
  name: string,
  depth: number,
  tensors: Map<string, TorchTensor>,
  values: Map<string, unknown>,
  path: string,
): void {
  if (depth > MAX_NESTING)
    throw new CheckpointError(
      `${path}: "${name}" is nested more than ${MAX_NESTING} levels deep (a state dict nests a few); the file is corrupt`,
    );
  const child = (k: unknown) => (name ? `${name}.${String(k)}` : String(k));
  if (v instanceof TorchTensor) tensors.set(name, v);
  else if (v instanceof Map) for (const [k, x] of v) flatten(x, child(k), depth + 1, tensors, values, path);
  else if (Array.isArray(v) || v instanceof PickleTuple)
    (Array.isArray(v) ? v : v.items).forEach((x, i) => flatten(x, child(i), depth + 1, tensors, values, path));
  else if (v === null || ["string", "number", "boolean", "bigint"].includes(typeof v)) values.set(name, v);
}
