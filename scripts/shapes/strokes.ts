import { IMAGE_SIZE, type Rgb } from "./world.js";

/** Pen strokes on a 64x64 float RGB canvas: what the hand-drawn sketch generators draw with. */

export type Point = readonly [number, number];

export interface Stroke {
  readonly a: Point;
  readonly b: Point;
  readonly width: number;
}

/** Paints strokes as round-capped lines with anti-aliased edges, all in one colour (overlaps do not darken). */
export function paint(data: Float32Array, strokes: readonly Stroke[], colour: Rgb): void {
  const coverage = new Float32Array(IMAGE_SIZE * IMAGE_SIZE);
  for (const { a, b, width } of strokes) {
    const reach = width / 2 + 1;
    const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - reach)),
      x1 = Math.min(IMAGE_SIZE - 1, Math.ceil(Math.max(a[0], b[0]) + reach));
    const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - reach)),
      y1 = Math.min(IMAGE_SIZE - 1, Math.ceil(Math.max(a[1], b[1]) + reach));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const c = Math.min(1, Math.max(0, width / 2 + 0.5 - segmentDistance(x + 0.5, y + 0.5, a, b)));
        const p = y * IMAGE_SIZE + x;
        if (c > coverage[p]!) coverage[p] = c;
      }
    }
  }
  for (let p = 0; p < coverage.length; p++) {
    const c = coverage[p]!;
    if (c === 0) continue;
    for (let k = 0; k < 3; k++) data[p * 3 + k] = data[p * 3 + k]! * (1 - c) + colour[k]! * c;
  }
}

/** A float canvas as an 8-bit image. */
export function toImage(data: Float32Array): { width: number; height: number; data: Uint8Array } {
  return {
    width: IMAGE_SIZE,
    height: IMAGE_SIZE,
    data: Uint8Array.from(data, (v) => Math.round(Math.min(255, Math.max(0, v)))),
  };
}

function segmentDistance(x: number, y: number, a: Point, b: Point): number {
  const dx = b[0] - a[0],
    dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.min(1, Math.max(0, ((x - a[0]) * dx + (y - a[1]) * dy) / len2));
  return Math.hypot(x - (a[0] + t * dx), y - (a[1] + t * dy));
}
