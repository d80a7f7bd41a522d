import { basename } from "node:path";
import type { RrdbnetConfig } from "../configs/rrdbnet.js";
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { RenamedWeights, type TensorRef } from "./ldm-keymap.js";
import { openTensorFile, type TensorFile } from "./tensor-file.js";

/**
 * Opening an ESRGAN / Real-ESRGAN upscaler (RRDBNet) from .pth (through the restricted pickle reader) or
 * .safetensors, in either key layout, as weights under Real-ESRGAN's names with the config read from the shapes:
 *  - Real-ESRGAN (BasicSR): conv_first, body.N.rdb{1,2,3}.conv{1..5}, conv_body, conv_up1.., conv_hr, conv_last;
 *  - old ESRGAN (one Sequential): model.0 (conv_first), model.1.sub.N.RDB{1,2,3}.conv{1..5}.0 (the blocks),
 *    model.1.sub.<blocks> (trunk conv), then per x2 upsampling [Upsample, conv, LeakyReLU] from model.2, then the
 *    HR conv and, after its LeakyReLU, the last conv.
 * BasicSR's training wrappers (`params_ema`, preferred as BasicSR's own loader does, and `params`) are unwrapped.
 */
export interface RrdbnetCheckpoint {
  readonly path: string;
  readonly layout: "real-esrgan" | "esrgan";
  readonly config: RrdbnetConfig;
  readonly weights: RenamedWeights;
  close(): void;
}

const LAYOUTS =
  "an ESRGAN / Real-ESRGAN upscaler holds RRDBNet weights named conv_first/body.N.rdb1.conv1/... (Real-ESRGAN) or " +
  "model.0/model.1.sub.N.RDB1.conv1.0/... (old ESRGAN), possibly under params_ema or params";

export function openRrdbnet(path: string): RrdbnetCheckpoint {
  const file = openTensorFile(path);
  try {
    const keys = file.keys();
    const wrapper = ["params_ema", "params"].find((w) => keys.some((k) => k.startsWith(`${w}.`)));
    const stored = new Map<string, string>(); // name without the wrapper -> name in the file
    for (const k of keys) {
      if (!wrapper) stored.set(k, k);
      else if (k.startsWith(`${wrapper}.`)) stored.set(k.slice(wrapper.length + 1), k);
    }
    const table = new Map<string, TensorRef>();
    let layout: RrdbnetCheckpoint["layout"];
    if (stored.has("conv_first.weight")) {
      layout = "real-esrgan";
      for (const [name, key] of stored) table.set(name, ref(file, key));
    } else if (stored.has("model.0.weight")) {
      layout = "esrgan";
      for (const [name, key] of renameOldLayout(stored, path)) table.set(name, ref(file, key));
    } else {
      throw new UnsupportedModelError(
        `${path}: no conv_first.weight or model.0.weight among ${keys.length} tensors (${keys.slice(0, 3).join(", ")}...); ${LAYOUTS}. ` +
          "Other upscaler architectures (SwinIR, HAT, DAT, ...) are not supported",
      );
    }
    const weights = new RenamedWeights(path, table);
    return { path, layout, config: configFrom(weights, path), weights, close: () => file.close() };
  } catch (e) {
    file.close();
    throw e;
  }
}

function ref(file: TensorFile, stored: string): TensorRef {
  return { file, stored, shape: file.info(stored).shape };
}

/** Old ESRGAN names to Real-ESRGAN's, from the positions in the Sequential (see the layout above). */
function renameOldLayout(stored: ReadonlyMap<string, string>, path: string): Map<string, string> {
  const convs = new Set<number>();
  let blocks = 0;
  for (const k of stored.keys()) {
    const top = /^model\.(\d+)\.(weight|bias)$/.exec(k);
    if (top) convs.add(Number(top[1]));
    const block = /^model\.1\.sub\.(\d+)\.RDB\d\./.exec(k);
    if (block) blocks = Math.max(blocks, Number(block[1]) + 1);
  }
  // With n upsamplings of [Upsample, conv, LeakyReLU] after model.0 and model.1, the up convs sit at 3, 6, ..., 3n,
  // the HR conv at 3n + 2 (after the last LeakyReLU) and the last conv at 3n + 4 (after the HR conv's).
  let upsamples = 0;
  while (convs.has(3 * (upsamples + 1))) upsamples++;
  const hr = 3 * upsamples + 2;
  const last = 3 * upsamples + 4;
  if (!convs.has(hr) || !convs.has(last) || [...convs].some((i) => i > last))
    throw new CheckpointError(
      `${path}: the old ESRGAN layout's convs sit at model.${[...convs].sort((a, b) => a - b).join("/")}; expected ` +
        `model.0, up convs at model.3, model.6, ..., then the HR and last convs; the file is of another architecture`,
    );
  const names = new Map<string, string>([
    ["model.0", "conv_first"],
    [`model.1.sub.${blocks}`, "conv_body"],
  ]);
  for (let i = 1; i <= upsamples; i++) names.set(`model.${3 * i}`, `conv_up${i}`);
  names.set(`model.${hr}`, "conv_hr");
  names.set(`model.${last}`, "conv_last");
  const out = new Map<string, string>();
  for (const [k, key] of stored) {
    const block = /^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$/.exec(k);
    if (block) {
      out.set(`body.${block[1]}.rdb${block[2]}.conv${block[3]}.${block[4]}`, key);
      continue;
    }
    const conv = /^(model\.\d+|model\.1\.sub\.\d+)\.(weight|bias)$/.exec(k);
    const name = conv ? names.get(conv[1]!) : undefined;
    if (!name) throw new CheckpointError(`${path}: "${key}" is not a tensor of the old ESRGAN layout; ${LAYOUTS}`);
    out.set(`${name}.${conv![2]}`, key);
  }
  return out;
}

/** Sizes from shapes: conv_first [features, 3 * unshuffle², 3, 3], conv1 [growth, ...], counts of blocks and up convs. */
function configFrom(w: RenamedWeights, path: string): RrdbnetConfig {
  const first = w.shape("conv_first.weight");
  const lastConv = w.has("conv_last.weight") ? w.shape("conv_last.weight") : undefined;
  if (first.length !== 4 || !lastConv || lastConv.length !== 4)
    throw new CheckpointError(`${path}: conv_first.weight / conv_last.weight are not 4-D conv weights; ${LAYOUTS}`);
  const imageChannels = lastConv[0]!;
  const ratio = first[1]! / imageChannels;
  const unshuffle = Math.round(Math.sqrt(ratio));
  if (unshuffle * unshuffle !== ratio || ![1, 2, 4].includes(unshuffle))
    throw new UnsupportedModelError(
      `${path}: conv_first takes ${first[1]} channels for ${imageChannels}-channel images; RRDBNet takes 1x, 4x or 16x the image channels`,
    );
  let blocks = 0;
  while (w.has(`body.${blocks}.rdb1.conv1.weight`)) blocks++;
  let upsamples = 0;
  while (w.has(`conv_up${upsamples + 1}.weight`)) upsamples++;
  if (blocks === 0) throw new CheckpointError(`${path}: no RRDB blocks (body.0.rdb1.conv1.weight); ${LAYOUTS}`);
  return {
    imageChannels,
    features: first[0]!,
    growth: w.shape("body.0.rdb1.conv1.weight")[0]!,
    blocks,
    upsamples,
    unshuffle,
  };
}

/** A1111 lists an upscaler by its file name without the extension. */
export function upscalerName(path: string): string {
  return basename(path).replace(/\.(pth|pt|ckpt|bin|safetensors)$/i, "");
}
