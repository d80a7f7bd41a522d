import { InputError } from "../errors.js";
import { type ModelUpscalerOptions, modelUpscaler } from "./model-upscaler.js";
import { RESIZE_UPSCALERS, resizeUpscaler } from "./resize-upscalers.js";
import { findUpscalerFiles, type UpscalerFile, type UpscalerSearch } from "./upscaler-folders.js";
import type { Upscaler } from "./upscaler.js";

/** An entry of the list, in A1111's terms (GET /sdapi/v1/upscalers maps it to snake_case). */
export interface UpscalerEntry {
  readonly name: string;
  /** A1111's scaler family (model_name); null for the resize-only upscalers. */
  readonly modelName: string | null;
  /** The model file (model_path); null for the resize-only ones. */
  readonly modelPath: string | null;
  /** The native scale as the file name says it ("4x-UltraSharp", "RealESRGAN_x2plus"), else A1111's default 4. */
  readonly scale: number;
}

/**
 * The upscalers a server or command can use by name: A1111's None, Lanczos and Nearest, then every ESRGAN /
 * Real-ESRGAN model file in the upscaler folders. Model upscalers are opened on first use and kept (their
 * onnxruntime session) until `close`; the folder listing is kept until `refresh`.
 */
export class UpscalerRegistry {
  private files: UpscalerFile[] | undefined;
  private readonly open = new Map<string, Upscaler>();

  constructor(
    private readonly search: UpscalerSearch = {},
    private readonly options: ModelUpscalerOptions = {},
  ) {}

  list(): UpscalerEntry[] {
    return [
      ...RESIZE_UPSCALERS.map((name) => ({ name, modelName: null, modelPath: null, scale: 4 })),
      ...this.modelFiles().map((f) => ({
        name: f.name,
        modelName: f.family,
        modelPath: f.path,
        scale: nameScale(f.name),
      })),
    ];
  }

  /** The model files' names (the list without the resize-only upscalers), which the hires fix may name too. */
  modelNames(): string[] {
    return this.modelFiles().map((f) => f.name);
  }

  refresh(): void {
    this.files = undefined;
  }

  /** The upscaler named `name` (A1111's names; case-insensitive when unambiguous), or an InputError listing them. */
  get(name: string): Upscaler {
    const resize = RESIZE_UPSCALERS.find((n) => n.toLowerCase() === name.toLowerCase());
    if (resize) return resizeUpscaler(resize);
    let file = this.find(name);
    if (!file) {
      this.refresh(); // a file copied in since the listing
      file = this.find(name);
    }
    if (!file)
      throw new InputError(
        `no upscaler named "${name}"; available: ${this.list()
          .map((e) => e.name)
          .join(", ")}. Put ESRGAN / Real-ESRGAN model files (.pth, .safetensors) in an A1111 models/ESRGAN folder, ` +
          "ComfyUI's models/upscale_models or DIFFUSE_HOME/upscalers, or name the folder with --models-dir",
      );
    let upscaler = this.open.get(file.path);
    if (!upscaler) {
      upscaler = modelUpscaler(file.path, this.options);
      this.open.set(file.path, upscaler);
    }
    return upscaler;
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((u) => u.close()));
  }

  private modelFiles(): UpscalerFile[] {
    this.files ??= findUpscalerFiles(this.search);
    return this.files;
  }

  private find(name: string): UpscalerFile | undefined {
    const files = this.modelFiles();
    const exact = files.find((f) => f.name === name);
    if (exact) return exact;
    const folded = files.filter((f) => f.name.toLowerCase() === name.toLowerCase());
    return folded.length === 1 ? folded[0] : undefined;
  }
}

/** "4x-UltraSharp", "RealESRGAN_x2plus", "ESRGAN_4x": the digit beside an x, as A1111's page reads it. */
function nameScale(name: string): number {
  const m = /(\d)[xX]|[xX](\d)/.exec(name);
  return m ? Number(m[1] ?? m[2]) : 4;
}
