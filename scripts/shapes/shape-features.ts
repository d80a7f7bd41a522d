/**
 * Scale-free measurements of a binary object mask that tell the shapes of the world apart:
 * - fill: area / bounding-box area (square 1, circle 0.79, cross 0.55, triangle 0.5, star 0.39);
 * - solidity: area / convex-hull area (1 for the convex shapes, 0.71 for the cross, 0.56 for the star);
 * - topness: the centroid's height within the box (0.5 for symmetric shapes, 0.67 for the upward triangle);
 * - aspect: width / height;
 * - mirror: overlap (IoU) of the mask with itself flipped upside down (1 for circle, square and cross, about 0.6
 *   for the star and less for the triangle), which separates a small star from a cross when pixels blur the rest.
 */
export interface ShapeFeatures {
  readonly fill: number;
  readonly solidity: number;
  readonly topness: number;
  readonly aspect: number;
  readonly mirror: number;
}

export interface MaskStats {
  readonly area: number;
  /** Centroid in pixel coordinates (pixel centres at i + 0.5). */
  readonly cx: number;
  readonly cy: number;
  /** Bounding box, inclusive pixel indices. */
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  readonly features: ShapeFeatures;
}

/** `pixels` are indices y * width + x of the mask's pixels. */
export function measureMask(pixels: readonly number[], width: number): MaskStats {
  let sx = 0,
    sy = 0;
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  const corners: [number, number][] = [];
  for (const p of pixels) {
    const x = p % width,
      y = Math.floor(p / width);
    sx += x + 0.5;
    sy += y + 0.5;
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
    corners.push([x, y], [x + 1, y], [x, y + 1], [x + 1, y + 1]);
  }
  const area = pixels.length;
  const w = x1 - x0 + 1,
    h = y1 - y0 + 1;
  const cx = sx / area,
    cy = sy / area;
  const members = new Set(pixels);
  let overlap = 0;
  for (const p of pixels) {
    const x = p % width,
      y = Math.floor(p / width);
    if (members.has((y0 + y1 - y) * width + x)) overlap++;
  }
  return {
    area,
    cx,
    cy,
    x0,
    y0,
    x1,
    y1,
    features: {
      fill: area / (w * h),
      // The hull of pixel corners encloses whole pixels, so a perfectly convex mask scores close to 1.
      solidity: area / polygonArea(convexHull(corners)),
      topness: (cy - y0) / h,
      aspect: w / h,
      mirror: overlap / (2 * area - overlap),
    },
  };
}

/** Andrew's monotone chain; returns the hull counter-clockwise without repeating the first point. */
export function convexHull(points: readonly (readonly [number, number])[]): [number, number][] {
  const pts = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts.map((p) => [p[0], p[1]]);
  const cross = (o: readonly number[], a: readonly number[], b: readonly number[]) =>
    (a[0]! - o[0]!) * (b[1]! - o[1]!) - (a[1]! - o[1]!) * (b[0]! - o[0]!);
  const half = (list: readonly (readonly [number, number])[]) => {
    const out: [number, number][] = [];
    for (const p of list) {
      while (out.length >= 2 && cross(out[out.length - 2]!, out[out.length - 1]!, p) <= 0) out.pop();
      out.push([p[0], p[1]]);
    }
    out.pop();
    return out;
  };
  return [...half(pts), ...half([...pts].reverse())];
}

function polygonArea(poly: readonly (readonly [number, number])[]): number {
  let a = 0;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++)
    a += poly[j]![0] * poly[i]![1] - poly[i]![0] * poly[j]![1];
  return Math.abs(a) / 2 || 1;
}
