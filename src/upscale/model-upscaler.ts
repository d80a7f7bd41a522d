import { rrdbnetScale } from "../configs/rrdbnet.js";
import { buildRrdbnet, RRDBNET_IO } from "../models/rrdbnet.js";
import { serializeGraph } from "../onnx/serialize.js";
import { Session } from "../runtime/session.js";
import { openRrdbnet, upscalerName } from "../weights/rrdbnet-checkpoint.js";
import { ScopedWeights } from "../weights/weight-source.js";
import { DEFAULT_TILES, type TileOptions, upscaleInTiles } from "./tiles.js";
import { type Upscaler, upscaleWithModel } from "./upscaler.js";

export interface ModelUpscalerOptions {
  /** onnxruntime threads (default: the machine's cores). */
  readonly threads?: number;
  /** Tile size and overlap in input pixels (A1111's ESRGAN_tile 192 and ESRGAN_tile_overlap 8). */
  readonly tiles?: Omit<TileOptions, "signal">;
}

/**
 * An ESRGAN / Real-ESRGAN model file as an upscaler: the RRDBNet graph is built from the weights and its session
 * made on first use (listing upscalers opens no model), then each pass runs in tiles.
 */
export function modelUpscaler(path: string, opts: ModelUpscalerOptions = {}): Upscaler {
  let loading: Promise<{ session: Session; scale: number; unshuffle: number }> | undefined;
  const load = () => {
    loading ??= (async () => {
      const model = openRrdbnet(path);
      try {
        const graph = serializeGraph(buildRrdbnet(model.config, new ScopedWeights(model.weights)));
        const session = await Session.create(graph, opts.threads === undefined ? {} : { threads: opts.threads });
        return { session, scale: rrdbnetScale(model.config), unshuffle: model.config.unshuffle };
      } finally {
        model.close();
      }
    })();
    loading.catch(() => {
      loading = undefined; // a failed load is retried by the next call, after the user fixed the file
    });
    return loading;
  };
  const tiles = opts.tiles ?? DEFAULT_TILES;
  return {
    name: upscalerName(path),
    path,
    async upscale(rgb, width, height, outWidth, outHeight, signal) {
      const { session, scale, unshuffle } = await load();
      const network = async (tile: Float32Array, w: number, h: number) => {
        // Pixel-unshuffling models need sides divisible by their factor: pad by repeating the edge, crop after.
        const pw = Math.ceil(w / unshuffle) * unshuffle;
        const ph = Math.ceil(h / unshuffle) * unshuffle;
        const input = pw === w && ph === h ? tile : padEdges(tile, w, h, pw, ph);
        const out = await session.run({ [RRDBNET_IO.image]: { data: input, dims: [1, 3, ph, pw] } });
        const data = out[RRDBNET_IO.upscaled]!.data as Float32Array;
        return pw === w && ph === h ? data : crop(data, pw * scale, ph * scale, w * scale, h * scale);
      };
      const pass = (image: Uint8Array, w: number, h: number) =>
        upscaleInTiles(image, w, h, scale, network, { ...tiles, signal });
      return upscaleWithModel(pass, scale, { rgb, width, height }, outWidth, outHeight);
    },
    async close() {
      const l = loading;
      loading = undefined;
      if (l) await (await l.catch(() => undefined))?.session.release();
    },
  };
}

function padEdges(planes: Float32Array, w: number, h: number, pw: number, ph: number): Float32Array {
  const out = new Float32Array(3 * pw * ph);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < ph; y++)
      for (let x = 0; x < pw; x++)
        out[c * pw * ph + y * pw + x] = planes[c * w * h + Math.min(y, h - 1) * w + Math.min(x, w - 1)]!;
  return out;
}

function crop(planes: Float32Array, w: number, h: number, cw: number, ch: number): Float32Array {
  const out = new Float32Array(3 * cw * ch);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < ch; y++)
      out.set(planes.subarray(c * w * h + y * w, c * w * h + y * w + cw), c * cw * ch + y * cw);
  return out;
}
