import type { ShapeName } from "./world.js";

/**
 * Each shape as a signed distance field in pixels (negative inside), centred on the middle of its bounding box
 * and scaled by a nominal radius r. A distance field gives anti-aliased edges cheaply: a pixel's coverage is
 * about 0.5 - distance, clamped to [0, 1], which is exact for straight edges and close enough at corners.
 */

export type DistanceField = (x: number, y: number) => number;

/** Half-extent of each shape's bounding box in units of r, so callers can bound the pixels to visit. */
export const HALF_EXTENT = 1.06;

type Point = readonly [number, number];

/** Half side of a square: 0.88 r gives about the circle's area, so "big" means the same amount of colour for both. */
const SQUARE_HALF = 0.88;
/** Half width of a cross's arms. */
const CROSS_ARM = 0.33;

export function shapeField(shape: ShapeName, cx: number, cy: number, r: number): DistanceField {
  switch (shape) {
    case "circle":
      return (x, y) => Math.hypot(x - cx, y - cy) - r;
    case "square": {
      const h = SQUARE_HALF * r;
      return (x, y) => boxDistance(x - cx, y - cy, h, h);
    }
    case "cross": {
      const arm = CROSS_ARM * r;
      return (x, y) => Math.min(boxDistance(x - cx, y - cy, r, arm), boxDistance(x - cx, y - cy, arm, r));
    }
    case "triangle":
    case "star":
      return polygonField(shapeOutline(shape, cx, cy, r));
  }
}

/**
 * Each shape's outline as a closed polygon (the last point joins the first), the same geometry as its field: the
 * path a pen follows to draw it. A circle gets 32 points.
 */
export function shapeOutline(shape: ShapeName, cx: number, cy: number, r: number): Point[] {
  switch (shape) {
    case "circle":
      return Array.from(
        { length: 32 },
        (_, i) => [cx + r * Math.cos((i * Math.PI) / 16), cy + r * Math.sin((i * Math.PI) / 16)] as const,
      );
    case "square": {
      const h = SQUARE_HALF * r;
      return [
        [cx - h, cy - h],
        [cx + h, cy - h],
        [cx + h, cy + h],
        [cx - h, cy + h],
      ];
    }
    case "cross": {
      const a = CROSS_ARM * r;
      // Clockwise from the top arm's left corner.
      const quarter: [number, number][] = [
        [-a, -r],
        [a, -r],
        [a, -a],
      ];
      const pts: Point[] = [];
      for (let k = 0; k < 4; k++) {
        for (const [x, y] of quarter) {
          // Rotate by k quarter turns: (x, y) -> (-y, x).
          const [rx, ry] = k === 0 ? [x, y] : k === 1 ? [-y, x] : k === 2 ? [-x, -y] : [y, -x];
          pts.push([cx + rx, cy + ry]);
        }
      }
      return pts;
    }
    case "triangle": {
      // Equilateral, pointing up, 2.1 r wide.
      const half = 1.05 * r;
      const height = 2 * half * (Math.sqrt(3) / 2);
      return [
        [cx, cy - height / 2],
        [cx + half, cy + height / 2],
        [cx - half, cy + height / 2],
      ];
    }
    case "star": {
      // Five points, one up; inner radius 0.45 of the outer (a pentagram's is 0.38) so the arms stay thick
      // enough to survive at small sizes.
      const outer = 1.1 * r;
      const inner = 0.45 * outer;
      const top = -outer;
      const bottom = outer * Math.cos(Math.PI / 5);
      const shift = -(top + bottom) / 2; // moves the bounding box centre onto (cx, cy)
      const pts: Point[] = [];
      for (let i = 0; i < 10; i++) {
        const a = -Math.PI / 2 + (i * Math.PI) / 5;
        const rad = i % 2 === 0 ? outer : inner;
        pts.push([cx + rad * Math.cos(a), cy + shift + rad * Math.sin(a)]);
      }
      return pts;
    }
  }
}

function boxDistance(dx: number, dy: number, hx: number, hy: number): number {
  const qx = Math.abs(dx) - hx;
  const qy = Math.abs(dy) - hy;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0);
}

function polygonField(pts: readonly Point[]): DistanceField {
  return (x, y) => {
    let best = Infinity;
    let inside = false;
    for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
      const [ax, ay] = pts[j]!;
      const [bx, by] = pts[i]!;
      const ex = bx - ax,
        ey = by - ay;
      const t = Math.max(0, Math.min(1, ((x - ax) * ex + (y - ay) * ey) / (ex * ex + ey * ey)));
      best = Math.min(best, Math.hypot(x - ax - t * ex, y - ay - t * ey));
      if (ay > y !== by > y && x < ax + ((y - ay) * ex) / ey) inside = !inside;
    }
    return inside ? -best : best;
  };
}
