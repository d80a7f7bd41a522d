import { UnsupportedModelError } from "../errors.js";
import type { ConfigJson } from "./json.js";

/**
 * diffusers' T2IAdapter (TencentARC's Adapter): the control image pixel-unshuffled by `downscaleFactor`, conv_in to
 * the first width, then one block per feature map the UNet takes; each block an optional 2x average pool, a 1x1
 * convolution where the width changes, and `numResBlocks` small ResNets. Field meanings follow its config.json.
 */
export interface T2IAdapterConfig {
  inChannels: number; // in_channels: 3 for RGB maps, 1 for the grey edge maps of the sketch / canny / lineart adapters
  channels: number[]; // channels: the width of each feature map, one per block
  numResBlocks: number; // num_res_blocks
  downscaleFactor: number; // downscale_factor: 8 (SD1.x / SD2), 16 (SDXL)
  /**
   * adapter_type: "full_adapter" (every block after the first halves the size) or "full_adapter_xl" (only the
   * third does: SDXL's first level keeps the latent size, its features start one level down).
   */
  adapterType: "full_adapter" | "full_adapter_xl";
}

const TYPES = ["full_adapter", "full_adapter_xl"] as const;

export function t2iAdapterConfigFromDiffusers(c: ConfigJson, origin = "config.json"): T2IAdapterConfig {
  const type = c.adapter_type ?? "full_adapter";
  if (!TYPES.includes(type as T2IAdapterConfig["adapterType"])) {
    throw new UnsupportedModelError(
      `${origin}: adapter_type ${JSON.stringify(type)} is not supported (${TYPES.join(" or ")}; the light and style adapters are not)`,
    );
  }
  const channels = (c.channels as unknown[] | undefined) ?? [320, 640, 1280, 1280];
  const positive = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!Array.isArray(channels) || channels.length < 1 || !channels.every(positive)) {
    throw new UnsupportedModelError(
      `${origin}: channels ${JSON.stringify(channels)} must be a list of positive integers`,
    );
  }
  const config: T2IAdapterConfig = {
    inChannels: Number(c.in_channels ?? 3),
    channels: channels.map(Number),
    numResBlocks: Number(c.num_res_blocks ?? 2),
    downscaleFactor: Number(c.downscale_factor ?? 8),
    adapterType: type as T2IAdapterConfig["adapterType"],
  };
  for (const key of ["inChannels", "numResBlocks", "downscaleFactor"] as const) {
    if (!positive(config[key]))
      throw new UnsupportedModelError(`${origin}: ${key} ${config[key]} must be a positive integer`);
  }
  if (config.adapterType === "full_adapter_xl" && (config.channels.length !== 4 || channels[2] !== channels[3])) {
    throw new UnsupportedModelError(
      `${origin}: a full_adapter_xl has 4 blocks, the last two of the same width (channels ${JSON.stringify(channels)})`,
    );
  }
  return config;
}

/**
 * Block `i`'s input width and whether it halves the size: in a full adapter every block after the first reads
 * the previous width and halves; in the XL adapter blocks 1 and 2 widen and only block 2 halves.
 */
export function adapterBlock(c: T2IAdapterConfig, i: number): { inChannels: number; down: boolean } {
  const prev = c.channels[Math.max(i - 1, 0)]!;
  if (c.adapterType === "full_adapter_xl")
    return { inChannels: i === 1 || i === 2 ? prev : c.channels[i]!, down: i === 2 };
  return { inChannels: prev, down: i > 0 };
}

/**
 * The shape [channels, height, width] of each feature map for a control image of height x width pixels (multiples
 * of the downscale factor): each 2x pool rounds an odd size up (ceil mode).
 */
export function adapterFeatureShapes(c: T2IAdapterConfig, height: number, width: number): [number, number, number][] {
  let [h, w] = [height / c.downscaleFactor, width / c.downscaleFactor];
  return c.channels.map((ch, i) => {
    if (adapterBlock(c, i).down) [h, w] = [Math.ceil(h / 2), Math.ceil(w / 2)];
    return [ch, h, w];
  });
}
