import type { TensorFile } from "./tensor-file.js";

/** Where PyTorch Lightning (and the original Stable Diffusion training code) puts the model's tensors. */
const STATE_DICT = "state_dict.";

/**
 * The model's tensors in a file: a training checkpoint's `state_dict` entry under the names inside it, as every
 * tool that loads SD `.ckpt` files takes them (`checkpoint.get("state_dict", checkpoint)`), or the whole file when
 * it is a bare state dict (every .safetensors file). The entries beside a state_dict (global_step, epoch, callback
 * states that may hold a tensor or two) are not the model's and are left out. Names only: no tensor is read.
 */
export function modelTensors(file: TensorFile): TensorFile {
  const keys = file.keys();
  if (!keys.some((k) => k.startsWith(STATE_DICT))) return file;
  const inner = keys.filter((k) => k.startsWith(STATE_DICT)).map((k) => k.slice(STATE_DICT.length));
  const names = new Set(inner);
  const stored = (name: string) => STATE_DICT + name;
  return {
    path: file.path,
    size: file.size,
    metadata: file.metadata,
    keys: () => [...inner],
    has: (name) => names.has(name),
    info: (name) => ({ ...file.info(stored(name)), name }),
    float32: (name, into) => file.float32(stored(name), into),
    close: () => file.close(),
  };
}
