import type { Dtype } from "./safetensors.js";
import { SafetensorsFile } from "./safetensors.js";
import { TorchFile } from "./torch-pickle.js";

/**
 * A file of named tensors read lazily, whatever its format: safetensors, or torch.save's pickles read by the
 * restricted reader (torch-pickle.ts). What readers of small networks (upscalers, embeddings) need from either.
 */
export interface TensorFile {
  readonly path: string;
  readonly size: number;
  readonly metadata: Readonly<Record<string, string>>;
  keys(): string[];
  has(name: string): boolean;
  info(name: string): { readonly name: string; readonly dtype: Dtype; readonly shape: readonly number[] };
  float32(name: string, into?: Float32Array): Float32Array;
  close(): void;
}

/** PyTorch's extensions (.pt, .pth, .ckpt, .bin); anything else is read as safetensors. */
export const TORCH_EXTENSIONS = /\.(pt|pth|ckpt|bin)$/i;

/** Opens a .safetensors file, or a torch.save file (.pt, .pth, .ckpt, .bin) through the restricted pickle reader. */
export function openTensorFile(path: string): TensorFile {
  return TORCH_EXTENSIONS.test(path) ? TorchFile.open(path) : SafetensorsFile.open(path);
}

/** The same from bytes in memory; `name`'s extension says the format, as a path's would. */
export function tensorFileFromBytes(bytes: Uint8Array, name: string): TensorFile {
  return TORCH_EXTENSIONS.test(name) ? TorchFile.fromBytes(bytes, name) : SafetensorsFile.fromBytes(bytes, name);
}
