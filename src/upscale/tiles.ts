import { InputError, InternalError } from "../errors.js";

/**
 * Running an image network over a large image in overlapping tiles, so that memory stays bounded by the tile size
 * (the network's activations) and one band of output rows, whatever the image size. Neighbouring tiles are
 * cross-faded over their overlap with linear ramps, normalized by the sum of the weights at each pixel (where three
 * tiles meet on a short axis the ramps alone would not sum to one), which hides the seams a network's zero padding
 * leaves at tile borders.
 */

/** A network over one tile: [3, h, w] floats in [0, 1], row-major planes, to [3, h * scale, w * scale]. */
export type TileNetwork = (tile: Float32Array, width: number, height: number) => Promise<Float32Array>;

export interface TileOptions {
  /** Tile side in input pixels (A1111's ESRGAN_tile, 192); 0 runs the whole image at once. */
  readonly tile: number;
  /** Overlap between neighbouring tiles in input pixels (A1111's ESRGAN_tile_overlap, 8). */
  readonly overlap: number;
  readonly signal?: AbortSignal;
}

/** A1111's defaults for ESRGAN_tile and ESRGAN_tile_overlap. */
export const DEFAULT_TILES = { tile: 192, overlap: 8 } as const;

/**
 * Tile starts along one axis of `length` pixels: evenly spread, the first at 0 and the last ending at the edge,
 * as few as cover the axis with at least `overlap` pixels shared between neighbours.
 */
export function tileStarts(length: number, tile: number, overlap: number): number[] {
  if (tile >= length) return [0];
  const count = Math.ceil((length - overlap) / (tile - overlap));
  return Array.from({ length: count }, (_, i) => Math.round((i * (length - tile)) / (count - 1)));
}

/** The weight of each position of tile `i` along one axis (length `size` in output pixels): ramps where it overlaps. */
function axisWeights(starts: readonly number[], i: number, tile: number, scale: number): Float32Array {
  const size = tile * scale;
  const w = new Float32Array(size).fill(1);
  const start = starts[i]! * scale;
  if (i > 0) {
    const shared = (starts[i - 1]! + tile) * scale - start; // output pixels shared with the previous tile
    for (let x = 0; x < shared; x++) w[x] = (x + 0.5) / shared;
  }
  if (i < starts.length - 1) {
    const from = starts[i + 1]! * scale - start;
    const shared = size - from;
    for (let x = from; x < size; x++) w[x] = w[x]! * (1 - (x - from + 0.5) / shared);
  }
  return w;
}

/**
 * Upscales RGB bytes (3 per pixel) by the network's integer `scale`, tile by tile; returns RGB bytes of
 * (width * scale) x (height * scale). The network's output is clamped to [0, 1] and rounded, as Real-ESRGAN does.
 */
export async function upscaleInTiles(
  rgb: Uint8Array,
  width: number,
  height: number,
  scale: number,
  network: TileNetwork,
  options: TileOptions,
): Promise<Uint8Array> {
  if (rgb.length !== width * height * 3)
    throw new InternalError(`RGB image of ${width}x${height} has ${rgb.length} bytes, expected ${width * height * 3}`);
  const tileW = options.tile > 0 ? Math.min(options.tile, width) : width;
  const tileH = options.tile > 0 ? Math.min(options.tile, height) : height;
  if (options.tile > 0 && (options.overlap < 0 || 2 * options.overlap >= options.tile))
    throw new InputError(
      `tile overlap ${options.overlap} must be between 0 and half the tile size ${options.tile}; lower the overlap or raise the tile`,
    );
  const xs = tileStarts(width, tileW, options.overlap);
  const ys = tileStarts(height, tileH, options.overlap);
  const outW = width * scale;
  const outH = height * scale;
  const out = new Uint8Array(outW * outH * 3);
  const bandRows = tileH * scale;
  // The output rows the current row of tiles writes, as weighted sums, from output row `bandStart`.
  let band = new Float32Array(outW * bandRows * 3);
  let next = new Float32Array(outW * bandRows * 3);
  let weights = new Float32Array(outW * bandRows);
  let nextWeights = new Float32Array(outW * bandRows);
  let bandStart = 0;
  const tile = new Float32Array(3 * tileW * tileH);
  const plane = tileW * tileH;
  const outPlane = plane * scale * scale;
  const columnWeights = xs.map((_, i) => axisWeights(xs, i, tileW, scale));
  for (let r = 0; r < ys.length; r++) {
    const y0 = ys[r]!;
    const rowWeights = axisWeights(ys, r, tileH, scale);
    for (let c = 0; c < xs.length; c++) {
      options.signal?.throwIfAborted();
      const x0 = xs[c]!;
      for (let y = 0; y < tileH; y++)
        for (let x = 0; x < tileW; x++) {
          const from = ((y0 + y) * width + x0 + x) * 3;
          const at = y * tileW + x;
          tile[at] = rgb[from]! / 255;
          tile[plane + at] = rgb[from + 1]! / 255;
          tile[2 * plane + at] = rgb[from + 2]! / 255;
        }
      const result = await network(tile, tileW, tileH);
      if (result.length !== 3 * outPlane)
        throw new InternalError(`the upscaler network returned ${result.length} values for a ${tileW}x${tileH} tile`);
      const cw = columnWeights[c]!;
      const ow = tileW * scale;
      for (let y = 0; y < tileH * scale; y++) {
        const wy = rowWeights[y]!;
        const row = (y0 * scale + y - bandStart) * outW;
        for (let x = 0; x < ow; x++) {
          const wgt = wy * cw[x]!;
          const px = row + x0 * scale + x;
          weights[px] = weights[px]! + wgt;
          const to = px * 3;
          const at = y * ow + x;
          band[to] = band[to]! + wgt * clamp01(result[at]!);
          band[to + 1] = band[to + 1]! + wgt * clamp01(result[outPlane + at]!);
          band[to + 2] = band[to + 2]! + wgt * clamp01(result[2 * outPlane + at]!);
        }
      }
    }
    // Rows above the next tile row's first are final: write them, and carry the shared rows into the next band.
    const done = r + 1 < ys.length ? ys[r + 1]! * scale : outH;
    const finished = (done - bandStart) * outW;
    for (let p = 0; p < finished; p++) {
      const k = 255 / weights[p]!;
      for (let ch = 0; ch < 3; ch++) out[(bandStart * outW + p) * 3 + ch] = Math.round(band[p * 3 + ch]! * k);
    }
    const used = (y0 * scale + bandRows - bandStart) * outW;
    next.fill(0);
    next.set(band.subarray(finished * 3, used * 3));
    nextWeights.fill(0);
    nextWeights.set(weights.subarray(finished, used));
    [band, next] = [next, band];
    [weights, nextWeights] = [nextWeights, weights];
    bandStart = done;
  }
  return out;
}

function clamp01(v: number): number {
  return Math.min(Math.max(v, 0), 1);
}
