import { writeFileSync } from "node:fs";
import { SafetensorsFile } from "../../src/weights/safetensors.js";

/**
 * Hand-assembled torch.save files for tests: pickle opcodes as bytes, and the zip container torch writes (entries
 * stored uncompressed). Nothing here is ever unpickled; the bytes are what a malicious or broken file would hold.
 */

/** Pickle text: latin1 bytes, so "\x8c\x02os" is SHORT_BINUNICODE "os". */
export const op = (s: string): Buffer => Buffer.from(s, "latin1");

/** SHORT_BINUNICODE of a short string. */
export const str = (s: string): string => `\x8c${String.fromCharCode(s.length)}${s}`;

/** BININT1 (0..255) or BININT (32-bit). */
export const int = (n: number): string => {
  if (n >= 0 && n < 256) return `K${String.fromCharCode(n)}`;
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return `J${b.toString("latin1")}`;
};

/** A protocol-2 pickle of `body`, ended by STOP. */
export const pickle = (body: string): Buffer => op(`\x80\x02${body}.`);

/**
 * A state dict {name: float32 tensor} as torch.save's data.pkl writes it: an OrderedDict of _rebuild_tensor_v2
 * calls over persistent storages ("storage", torch.FloatStorage, key, "cpu", numel).
 */
export function stateDictPickle(tensors: ReadonlyArray<{ name: string; shape: number[]; key: string }>): Buffer {
  let body = "ccollections\nOrderedDict\n)R(";
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const strides = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    body += str(t.name);
    body += "ctorch._utils\n_rebuild_tensor_v2\n(";
    body += `(${str("storage")}ctorch\nFloatStorage\n${str(t.key)}${str("cpu")}${int(numel)}tQ`;
    body += `${int(0)}(${t.shape.map(int).join("")}t(${strides.map(int).join("")}t\x89ccollections\nOrderedDict\n)Rt`;
    body += "R";
  }
  return pickle(`${body}u`);
}

/** torch's storage class of each dtype a checkpoint stores. */
const STORAGES = { F32: "FloatStorage", F16: "HalfStorage", BF16: "BFloat16Storage" } as const;

/** One tensor of a checkpoint: its values' little-endian bytes in `dtype`, and the storage key it is saved under. */
export interface CheckpointTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: keyof typeof STORAGES;
  readonly key: string;
}

/** The _rebuild_tensor_v2 call torch.save writes for a contiguous tensor over its own storage. */
function tensorCall(t: CheckpointTensor): string {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const strides = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return (
    "ctorch._utils\n_rebuild_tensor_v2\n(" +
    `(${str("storage")}ctorch\n${STORAGES[t.dtype]}\n${str(t.key)}${str("cpu")}${int(numel)}tQ` +
    `${int(0)}(${t.shape.map(int).join("")}t(${strides.map(int).join("")}t\x89ccollections\nOrderedDict\n)RtR`
  );
}

/**
 * A Stable Diffusion training checkpoint's data.pkl as PyTorch Lightning 1.4 saved sd-v1-4.ckpt: the model under
 * "state_dict" (an OrderedDict), beside "epoch", "global_step", "pytorch-lightning_version" and "callbacks", whose
 * callback states are keyed by the callback's class (a GLOBAL used as a dict key) and hold a tensor of their own.
 * `nested` is spliced into the state dict's items (a value that must never be read as data, for refusal tests).
 */
export function trainingCheckpointPickle(tensors: readonly CheckpointTensor[], nested = ""): Buffer {
  const state = tensors.map((t) => str(t.name) + tensorCall(t)).join("");
  const score: CheckpointTensor = { name: "best_model_score", shape: [], dtype: "F32", key: "score" };
  const callbacks =
    `}(cpytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n}(${str("monitor")}N` +
    `${str("best_model_score")}${tensorCall(score)}${str("dirpath")}${str("logs/checkpoints")}uu`;
  return pickle(
    `}(${str("epoch")}${int(6)}${str("global_step")}${int(840000)}${str("pytorch-lightning_version")}${str("1.4.2")}` +
      `${str("callbacks")}${callbacks}${str("state_dict")}ccollections\nOrderedDict\n)R(${state}${nested}uu`,
  );
}

/** A plain state dict of any dtypes: an OrderedDict of tensors, as torch.save(model.state_dict()) writes it. */
export function plainStateDictPickle(tensors: readonly CheckpointTensor[]): Buffer {
  return pickle(`ccollections\nOrderedDict\n)R(${tensors.map((t) => str(t.name) + tensorCall(t)).join("")}u`);
}

/**
 * A safetensors file's tensors re-saved as torch.save would save them (same dtypes, same bytes): as a training
 * checkpoint (trainingCheckpointPickle, `nested` spliced into its state dict) or as a plain state dict.
 */
export function torchSaveOf(
  file: {
    keys(): string[];
    info(name: string): { dtype: string; shape: readonly number[] };
    bytes(name: string): Buffer;
  },
  layout: "training" | "state-dict",
  nested = "",
): Buffer {
  const tensors: CheckpointTensor[] = [];
  const storages: Record<string, Uint8Array> = {};
  for (const [i, name] of file.keys().entries()) {
    const { dtype, shape } = file.info(name);
    if (!(dtype in STORAGES)) throw new Error(`${name}: ${dtype} has no storage here`);
    tensors.push({ name, shape, dtype: dtype as CheckpointTensor["dtype"], key: String(i) });
    storages[String(i)] = file.bytes(name);
  }
  if (layout === "state-dict") return torchZip(plainStateDictPickle(tensors), storages);
  storages["score"] = new Uint8Array(Float32Array.of(0.25).buffer);
  return torchZip(trainingCheckpointPickle(tensors, nested), storages);
}

/** Writes the .safetensors file `from` re-saved by torchSaveOf to `to`; returns `to`. */
export function resaveAsTorch(from: string, to: string, layout: "training" | "state-dict"): string {
  const f = SafetensorsFile.open(from);
  try {
    writeFileSync(to, torchSaveOf(f, layout));
  } finally {
    f.close();
  }
  return to;
}

/** A zip archive of stored (uncompressed) entries, as torch.save writes: local headers, data, central directory. */
export function zipArchive(entries: ReadonlyArray<readonly [string, Uint8Array]>): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt32LE(data.length, 20);
    c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(n.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, n);
    parts.push(local, n, Buffer.from(data));
    offset += 30 + n.length + data.length;
  }
  const dir = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, dir, end]);
}

/** A torch.save zip holding `pkl` as archive/data.pkl and the given storages as archive/data/<key>. */
export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array> = {}): Buffer {
  return zipArchive([
    ["archive/data.pkl", pkl],
    ...Object.entries(storages).map(([k, v]) => [`archive/data/${k}`, v] as const),
    ["archive/version", Buffer.from("3\n")],
  ]);
}
