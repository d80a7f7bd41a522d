import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { t2iAdapterConfigFromDiffusers, type T2IAdapterConfig } from "../configs/t2i-adapter.js";
import type { ShapeMap } from "./detect.js";

/**
 * The tensor names of a T2I-Adapter as they appear in the two layouts users have, told apart by their keys:
 * diffusers' (`adapter.conv_in.weight`, `adapter.body.N.resnets.M.block1.weight`, `adapter.body.N.in_conv.weight`)
 * and TencentARC's original one (`conv_in.weight`, `body.K.block1.weight`, `body.K.in_conv.weight`, one flat list of
 * ResNets). The light (color) adapter's blocks have an out_conv and no conv_in; it is recognised to be refused.
 */
export const T2I_ADAPTER_KEY = /^(adapter\.)?body\.\d+\.(resnets\.\d+\.|body\.\d+\.)?block1\.weight$/;

const ORIGINAL_RESNET = /^body\.(\d+)\.(block1|block2|in_conv)\.(weight|bias)$/;

/**
 * The stored names of an adapter file under diffusers names relative to the adapter root (conv_in, body.N...):
 * diffusers' with their `adapter.` prefix dropped, or TencentARC's regrouped per block. TencentARC's flat list puts
 * a block's 1x1 widening conv on its first ResNet, so the first ResNet after the first with an in_conv starts the
 * second block and gives the ResNets per block.
 */
export function t2iAdapterNames(keys: readonly string[], origin: string): Map<string, string> {
  if (keys.some((k) => /^(adapter\.)?body\.\d+\.out_conv\./.test(k)))
    throw new UnsupportedModelError(
      `${origin}: a light T2I-Adapter (the color adapter: blocks with an out_conv) is not supported; use a full adapter (sketch, canny, lineart, depth, ...)`,
    );
  if (keys.some((k) => k.startsWith("adapter.")))
    return new Map(keys.filter((k) => k.startsWith("adapter.")).map((k) => [k.slice("adapter.".length), k]));
  const resnets = new Set<number>();
  const widening: number[] = [];
  for (const k of keys) {
    const m = ORIGINAL_RESNET.exec(k);
    if (!m) continue;
    resnets.add(Number(m[1]));
    if (m[2] === "in_conv" && m[3] === "weight") widening.push(Number(m[1]));
  }
  const perBlock = Math.min(...widening.filter((i) => i > 0));
  if (!Number.isFinite(perBlock) || resnets.size % perBlock !== 0) {
    throw new CheckpointError(
      `${origin}: cannot group the adapter's ${resnets.size} ResNets (body.K.*) into blocks: no block after the first widens ` +
        `(body.K.in_conv.weight); the file is not a TencentARC full adapter`,
    );
  }
  const names = new Map<string, string>();
  for (const k of keys) {
    const m = ORIGINAL_RESNET.exec(k);
    if (!m) {
      names.set(k, k); // conv_in.*, or a tensor the shape check names as not part of the adapter
      continue;
    }
    const [block, resnet] = [Math.floor(Number(m[1]) / perBlock), Number(m[1]) % perBlock];
    if (m[2] === "in_conv") {
      if (resnet !== 0)
        throw new CheckpointError(`${origin}: "${k}" widens in the middle of a block of ${perBlock} ResNets`);
      names.set(`body.${block}.in_conv.${m[3]}`, k);
    } else names.set(`body.${block}.resnets.${resnet}.${m[2]}.${m[3]}`, k);
  }
  return names;
}

/**
 * A T2I-Adapter's config from its diffusers-named shapes (t2iAdapterNames): the widths per block, the ResNets per
 * block, and from conv_in's input width (in_channels x factor^2) the unshuffle factor and the map's channels: 1 or
 * 3 channels by 8 (SD1.x / SD2 adapters) or 16 (SDXL adapters, whose blocks follow FullAdapterXL).
 */
export function t2iAdapterConfigFromShapes(s: ShapeMap, origin: string): T2IAdapterConfig {
  const convIn = s.get("conv_in.weight");
  if (convIn?.length !== 4)
    throw new CheckpointError(`${origin}: missing or malformed "conv_in.weight"; the T2I-Adapter is incomplete`);
  const channels: number[] = [];
  for (let i = 0; s.has(`body.${i}.resnets.0.block1.weight`); i++)
    channels.push(s.get(`body.${i}.resnets.0.block1.weight`)![0]!);
  let numResBlocks = 0;
  while (s.has(`body.0.resnets.${numResBlocks}.block1.weight`)) numResBlocks++;
  const width = convIn[1]!;
  const unshuffle = [
    { factor: 8, inChannels: width / 64 },
    { factor: 16, inChannels: width / 256 },
  ].find((u) => u.inChannels === 1 || u.inChannels === 3);
  if (!unshuffle || channels.length === 0) {
    throw new UnsupportedModelError(
      `${origin}: conv_in takes ${width} channels, which is no 1- or 3-channel map unshuffled by 8 or 16; ` +
        `not a T2I-Adapter this engine knows (pass its diffusers folder with config.json)`,
    );
  }
  return t2iAdapterConfigFromDiffusers(
    {
      in_channels: unshuffle.inChannels,
      channels,
      num_res_blocks: numResBlocks,
      downscale_factor: unshuffle.factor,
      adapter_type: unshuffle.factor === 16 ? "full_adapter_xl" : "full_adapter",
    },
    origin,
  );
}
