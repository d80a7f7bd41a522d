import { luminance, maskImage } from "./grey.js";
import type { Preprocessor } from "./preprocessor.js";

/**
 * Canny edges (the map canny ControlNets were trained on): the luminance blurred by a 5x5 Gaussian (sigma 1.4),
 * Sobel gradients with OpenCV's L1 magnitude |gx| + |gy| (so A1111's thresholds mean the same), non-maximum
 * suppression across the gradient, then hysteresis: pixels above the high threshold are edges, and pixels above the
 * low one are edges when 8-connected to an edge.
 */
export const CANNY: Preprocessor = {
  name: "canny",
  thresholdA: { label: "Canny Low Threshold", min: 1, max: 255, default: 100 },
  thresholdB: { label: "Canny High Threshold", min: 1, max: 255, default: 200 },
  run(image, { thresholdA, thresholdB }) {
    const { width: w, height: h } = image;
    const [low, high] = thresholdA <= thresholdB ? [thresholdA, thresholdB] : [thresholdB, thresholdA];
    const blurred = gaussian5(luminance(image), w, h, 1.4);
    const { magnitude, gx, gy } = sobel(blurred, w, h);
    const thin = suppressNonMaxima(magnitude, gx, gy, w, h);
    return maskImage(hysteresis(thin, w, h, low, high), w, h);
  },
};

/** Replicated borders: reading outside the image reads its nearest pixel. */
const clamp = (v: number, max: number) => (v < 0 ? 0 : Math.min(v, max));

/** A separable 5-tap Gaussian blur. */
function gaussian5(src: Float32Array, w: number, h: number, sigma: number): Float32Array {
  const k = [-2, -1, 0, 1, 2].map((d) => Math.exp(-(d * d) / (2 * sigma * sigma)));
  const sum = k.reduce((a, b) => a + b, 0);
  const kernel = k.map((v) => v / sum);
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let d = -2; d <= 2; d++) s += kernel[d + 2]! * src[y * w + clamp(x + d, w - 1)]!;
      tmp[y * w + x] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let d = -2; d <= 2; d++) s += kernel[d + 2]! * tmp[clamp(y + d, h - 1) * w + x]!;
      out[y * w + x] = s;
    }
  }
  return out;
}

function sobel(
  src: Float32Array,
  w: number,
  h: number,
): { magnitude: Float32Array; gx: Float32Array; gy: Float32Array } {
  const gx = new Float32Array(src.length),
    gy = new Float32Array(src.length),
    magnitude = new Float32Array(src.length);
  const at = (x: number, y: number) => src[clamp(y, h - 1) * w + clamp(x, w - 1)]!;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const dx =
        at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1) - at(x - 1, y - 1) - 2 * at(x - 1, y) - at(x - 1, y + 1);
      const dy =
        at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1) - at(x - 1, y - 1) - 2 * at(x, y - 1) - at(x + 1, y - 1);
      const i = y * w + x;
      gx[i] = dx;
      gy[i] = dy;
      magnitude[i] = Math.abs(dx) + Math.abs(dy);
    }
  }
  return { magnitude, gx, gy };
}

const TAN_22_5 = Math.tan(Math.PI / 8);
const TAN_67_5 = Math.tan((3 * Math.PI) / 8);

/**
 * Keeps a pixel whose magnitude is a maximum along its gradient, quantised to 0, 45, 90 or 135 degrees: strictly
 * above the neighbour on one side and at least the other's (OpenCV's tie rule, so a symmetric ridge keeps one pixel).
 */
function suppressNonMaxima(m: Float32Array, gx: Float32Array, gy: Float32Array, w: number, h: number): Float32Array {
  const out = new Float32Array(m.length);
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : m[y * w + x]!);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const v = m[i]!;
      if (v === 0) continue;
      const ax = Math.abs(gx[i]!),
        ay = Math.abs(gy[i]!);
      let a: number, b: number;
      if (ay <= TAN_22_5 * ax) [a, b] = [at(x - 1, y), at(x + 1, y)];
      else if (ay > TAN_67_5 * ax) [a, b] = [at(x, y - 1), at(x, y + 1)];
      else if (gx[i]! * gy[i]! > 0) [a, b] = [at(x - 1, y - 1), at(x + 1, y + 1)];
      else [a, b] = [at(x + 1, y - 1), at(x - 1, y + 1)];
      if (v > a && v >= b) out[i] = v;
    }
  }
  return out;
}

/** Edges: above `high`, or above `low` and 8-connected to an edge (a flood from the strong pixels). */
function hysteresis(m: Float32Array, w: number, h: number, low: number, high: number): Uint8Array {
  const edge = new Uint8Array(m.length);
  const stack: number[] = [];
  for (let i = 0; i < m.length; i++) {
    if (m[i]! > high) {
      edge[i] = 1;
      stack.push(i);
    }
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    const x = i % w,
      y = (i - x) / w;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx,
          ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        const j = ny * w + nx;
        if (!edge[j] && m[j]! > low) {
          edge[j] = 1;
          stack.push(j);
        }
      }
    }
  }
  return edge;
}
