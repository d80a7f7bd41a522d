import { UpscalerRegistry } from "../upscale/upscalers.js";
import type { UpscalerSearch } from "../upscale/upscaler-folders.js";
import type { NamedUpscalers, PixelUpscaler } from "./hires-upscalers.js";

/**
 * The hires fix's named pixel upscalers: those given as functions, then the ESRGAN / Real-ESRGAN model files that
 * `search` finds (the folders /sdapi/v1/upscalers and `diffuse upscale` list), by file name. The search options
 * are plain data, so a worker thread or a queue worker builds the same list from them as the server does; a model
 * file is opened on its first use and kept until `close`.
 */
export function learnedUpscalers(
  given: Readonly<Record<string, PixelUpscaler>> = {},
  search: UpscalerSearch | undefined,
  threads: number | undefined,
): NamedUpscalers {
  const registry = search && new UpscalerRegistry(search, { threads });
  const files = (): string[] => registry?.modelNames().filter((name) => !(name in given)) ?? [];
  return {
    names: () => [...Object.keys(given), ...files()],
    get: (name) => {
      const own = given[name];
      if (own || !registry || !files().includes(name)) return own;
      // Opened here, on first use: a corrupt or unsafe file fails the generation that names it with its own error.
      return (rgb, w, h, ow, oh, signal) => registry.get(name).upscale(rgb, w, h, ow, oh, signal);
    },
    close: async () => registry?.close(),
  };
}
