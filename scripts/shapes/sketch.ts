import type { RgbImage } from "../../src/image/codec.js";
import { Prng } from "./prng.js";
import { paint, toImage, type Point, type Stroke } from "./strokes.js";
import {
  COLOURS,
  IMAGE_SIZE,
  PALETTE,
  POSITION_ANCHOR,
  POSITIONS,
  SHAPES,
  type ColourName,
  type PositionName,
  type Rgb,
  type ShapeName,
} from "./world.js";

/**
 * Rough sketches for image-to-image, the way a person draws one on the web page's canvas: the background roughly
 * washed in with a wide brush, then a blob scribbled in the object's colour with a zigzag fill and a wobbly
 * outline. The blob has no shape of its own; the prompt names the shape and leaves out the position, so a model
 * that puts the object where the blob was is following the sketch, not the words.
 */

export interface Sketch {
  readonly image: RgbImage;
  readonly prompt: string;
  readonly expected: {
    readonly colour: ColourName;
    readonly shape: ShapeName;
    readonly background: ColourName;
    readonly position: PositionName;
  };
  /** Centre of the blob, pixels. */
  readonly centre: readonly [number, number];
}

/** The i-th sketch: shapes, colours and positions in turn, everything else drawn from seed i. */
export function sketchCase(i: number): Sketch {
  const rng = new Prng(0x5e7c4 + i);
  const shape = SHAPES[i % SHAPES.length]!;
  const position = POSITIONS[(i + Math.floor(i / SHAPES.length)) % POSITIONS.length]!;
  const colour = COLOURS[(i * 3) % COLOURS.length]!;
  const background = rng.pick(COLOURS.filter((c) => c !== colour));

  const data = new Float32Array(IMAGE_SIZE * IMAGE_SIZE * 3);
  washBackground(rng, data, PALETTE[background]);

  const [ax, ay] = POSITION_ANCHOR[position];
  const centre: Point = [ax + rng.uniform(-3, 3), ay + rng.uniform(-3, 3)];
  const radius = rng.uniform(8, 12.5);
  paint(data, scribble(rng, centre, radius), handPicked(rng, PALETTE[colour]));

  const image = toImage(data);
  const article = /^[aeiou]/.test(colour) ? "an" : "a";
  return {
    image,
    prompt: `${article} ${colour} ${shape}, ${background} background`,
    expected: { colour, shape, background, position },
    centre,
  };
}

export function sketchCases(count: number): Sketch[] {
  return Array.from({ length: count }, (_, i) => sketchCase(i));
}

/** A colour picked by eye from a swatch: near the palette entry, not on it. */
function handPicked(rng: Prng, c: Rgb): Rgb {
  return [c[0] + rng.uniform(-20, 20), c[1] + rng.uniform(-20, 20), c[2] + rng.uniform(-20, 20)];
}

/** Flat fill, then a few wide horizontal brush passes of slightly different shades, as a bucket fill never is. */
function washBackground(rng: Prng, data: Float32Array, bg: Rgb): void {
  for (let p = 0; p < IMAGE_SIZE * IMAGE_SIZE; p++) data.set(bg, p * 3);
  const strokes: Stroke[] = [];
  for (let y = rng.uniform(2, 8); y < IMAGE_SIZE; y += rng.uniform(8, 14)) {
    strokes.push({
      a: [rng.uniform(-4, 10), y + rng.uniform(-2, 2)],
      b: [rng.uniform(54, 68), y + rng.uniform(-2, 2)],
      width: rng.uniform(6, 10),
    });
  }
  for (const s of strokes) {
    const [r, g, b] = handPicked(rng, bg);
    // A third of a hand-picked colour's deviation: the same paint, unevenly applied.
    paint(data, [s], [(r + 2 * bg[0]) / 3, (g + 2 * bg[1]) / 3, (b + 2 * bg[2]) / 3]);
  }
}

/**
 * A blob as a pen would scribble it: a closed outline whose radius wobbles with the angle, filled by a zigzag
 * whose lines stop short of, or overshoot, the outline by a pixel or two.
 */
function scribble(rng: Prng, [cx, cy]: Point, radius: number): Stroke[] {
  const phases = [rng.uniform(0, 2 * Math.PI), rng.uniform(0, 2 * Math.PI), rng.uniform(0, 2 * Math.PI)];
  const rAt = (t: number) =>
    radius *
    (1 +
      0.16 * Math.sin(2 * t + phases[0]!) +
      0.1 * Math.sin(3 * t + phases[1]!) +
      0.06 * Math.sin(5 * t + phases[2]!));
  const pen = () => rng.uniform(1.8, 2.8);
  const strokes: Stroke[] = [];

  const n = 28;
  const start = rng.uniform(0, 2 * Math.PI);
  let prev: Point | undefined;
  // A little more than a full turn: people close a loop by overshooting it.
  for (let k = 0; k <= n + 3; k++) {
    const t = start + (2 * Math.PI * k) / n;
    const p: Point = [
      cx + rAt(t) * Math.cos(t) + rng.uniform(-0.6, 0.6),
      cy + rAt(t) * Math.sin(t) + rng.uniform(-0.6, 0.6),
    ];
    if (prev) strokes.push({ a: prev, b: p, width: pen() });
    prev = p;
  }

  // Zigzag fill across a random direction: each pass runs along u, successive passes step along v.
  const angle = rng.uniform(0, Math.PI);
  const u: Point = [Math.cos(angle), Math.sin(angle)];
  const v: Point = [-u[1], u[0]];
  let last: Point | undefined;
  let forward = true;
  for (let off = -radius; off <= radius; off += rng.uniform(2.8, 4)) {
    const inside: number[] = [];
    for (let s = -1.5 * radius; s <= 1.5 * radius; s += 0.5) {
      const x = cx + s * u[0] + off * v[0],
        y = cy + s * u[1] + off * v[1];
      const t = Math.atan2(y - cy, x - cx);
      if (Math.hypot(x - cx, y - cy) <= rAt(t)) inside.push(s);
    }
    if (inside.length === 0) continue;
    let s0 = inside[0]! + rng.uniform(-1.5, 1.5),
      s1 = inside[inside.length - 1]! + rng.uniform(-1.5, 1.5);
    if (!forward) [s0, s1] = [s1, s0];
    const a: Point = [cx + s0 * u[0] + off * v[0], cy + s0 * u[1] + off * v[1]];
    const b: Point = [cx + s1 * u[0] + off * v[0], cy + s1 * u[1] + off * v[1]];
    if (last) strokes.push({ a: last, b: a, width: pen() });
    strokes.push({ a, b, width: pen() });
    last = b;
    forward = !forward;
  }
  return strokes;
}
