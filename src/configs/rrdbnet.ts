/**
 * RRDBNet, the network of ESRGAN and Real-ESRGAN upscalers, as read from a weights file (the files carry no config):
 * every size below comes from tensor shapes and key counts (weights/rrdbnet-checkpoint.ts).
 */
export interface RrdbnetConfig {
  /** Image channels in and out (3). */
  imageChannels: number;
  /** num_feat: channels of the trunk (64 in the published models). */
  features: number;
  /** num_grow_ch: channels each dense-block conv adds (32). */
  growth: number;
  /** num_block: RRDB blocks (23 for the x4 models, 6 for the anime ones). */
  blocks: number;
  /** Nearest x2 upsamplings, each followed by a conv and LeakyReLU (2 in Real-ESRGAN, log2(scale) in old ESRGAN). */
  upsamples: number;
  /** Pixel-unshuffle factor applied to the input first (Real-ESRGAN x2: 2, x1: 4; otherwise 1). */
  unshuffle: number;
}

/** The model's native scale: what its upsamplings gain less what the pixel-unshuffle took. */
export function rrdbnetScale(c: RrdbnetConfig): number {
  return 2 ** c.upsamples / c.unshuffle;
}
