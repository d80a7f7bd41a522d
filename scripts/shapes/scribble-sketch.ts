import type { RgbImage } from "../../src/image/codec.js";
import { shapeField, shapeOutline } from "./geometry.js";
import { Prng } from "./prng.js";
import type { Sketch } from "./sketch.js";
import { paint, toImage, type Point, type Stroke } from "./strokes.js";
import {
  COLOURS,
  IMAGE_SIZE,
  JITTER,
  POSITION_ANCHOR,
  POSITIONS,
  SHAPES,
  SIZE_RADIUS,
  SIZES,
  type Rgb,
  type ShapeName,
} from "./world.js";

/**
 * Rough pen drawings of shapes for the scribble ControlNet, the way a person draws one on the web page's canvas in
 * scribble mode: dark ink on light paper, the shape's outline traced by hand (wobbly lines, corners that overshoot
 * or stop short, a loop that does not quite close, sometimes traced twice or hatched in). The product turns such a
 * drawing into the model's white-on-black map with its scribble preprocessor (src/control/scribble.ts); the trainer's
 * data and the evaluation both go through that same code.
 */

/** Where and what to draw: a shape with its bounding-box centre and nominal radius (scene.ts's SceneObject fits). */
export interface Outlined {
  readonly shape: ShapeName;
  readonly cx: number;
  readonly cy: number;
  readonly radius: number;
}

/** A drawing of the given shapes, everything about the hand (pen, paper, wobble, style) drawn from rng. */
export function drawScribble(rng: Prng, objects: readonly Outlined[]): RgbImage {
  const data = new Float32Array(IMAGE_SIZE * IMAGE_SIZE * 3);
  // Paper: white to light grey, a little tinted, with a faint grain.
  const level = rng.uniform(215, 255);
  const paper: Rgb = [level + rng.uniform(-8, 0), level + rng.uniform(-8, 0), level + rng.uniform(-8, 0)];
  for (let p = 0; p < IMAGE_SIZE * IMAGE_SIZE; p++)
    for (let k = 0; k < 3; k++) data[p * 3 + k] = paper[k]! + rng.uniform(-3, 3);
  // Ink: black, graphite or a dark colour, well under the preprocessor's default threshold once anti-aliasing blends it.
  const ink: Rgb = [rng.uniform(10, 70), rng.uniform(10, 70), rng.uniform(10, 90)];
  const width = rng.uniform(1.3, 2.6);
  for (const o of objects) paint(data, outlineStrokes(rng, o, width), ink);
  return toImage(data);
}

/** The strokes of one hand-drawn outline (and, now and then, a hatched fill). */
function outlineStrokes(rng: Prng, o: Outlined, width: number): Stroke[] {
  // The hand's own distortion of the shape: a little rotation and stretch about the centre.
  const turn = rng.uniform(-0.12, 0.12),
    sx = 1 + rng.uniform(-0.08, 0.08),
    sy = 1 + rng.uniform(-0.08, 0.08);
  const warp = ([x, y]: Point): Point => {
    const dx = (x - o.cx) * sx,
      dy = (y - o.cy) * sy;
    return [o.cx + dx * Math.cos(turn) - dy * Math.sin(turn), o.cy + dx * Math.sin(turn) + dy * Math.cos(turn)];
  };
  const corners = shapeOutline(o.shape, o.cx, o.cy, o.radius)
    .map(warp)
    .map(([x, y]): Point => [x + rng.uniform(-1, 1), y + rng.uniform(-1, 1)]);
  const pen = () => width * rng.uniform(0.85, 1.15);
  const strokes: Stroke[] = [];
  const passes = rng.chance(0.2) ? 2 : 1;
  for (let pass = 0; pass < passes; pass++) {
    const shift: Point = pass === 0 ? [0, 0] : [rng.uniform(-1, 1), rng.uniform(-1, 1)];
    const pts = corners.map(([x, y]): Point => [x + shift[0], y + shift[1]]);
    if (o.shape !== "circle" && rng.chance(0.4)) {
      // Edge by edge: each side its own stroke, running past the corner or stopping short of it.
      for (let i = 0; i < pts.length; i++)
        strokes.push(...wobblyLine(rng, extend(rng, pts[i]!, pts[(i + 1) % pts.length]!), pen));
    } else {
      // One continuous loop from a random corner, overshooting its start or leaving a small gap.
      const start = rng.int(pts.length);
      const loop = Array.from({ length: pts.length + 1 }, (_, i) => pts[(start + i) % pts.length]!);
      const [a, b] = [loop[loop.length - 2]!, loop[loop.length - 1]!];
      const end = rng.uniform(-2.5, 3.5);
      const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
      loop[loop.length - 1] = [b[0] + ((b[0] - a[0]) / len) * end, b[1] + ((b[1] - a[1]) / len) * end];
      for (let i = 0; i + 1 < loop.length; i++) strokes.push(...wobblyLine(rng, [loop[i]!, loop[i + 1]!], pen));
    }
  }
  if (rng.chance(0.25)) strokes.push(...hatch(rng, o, pen));
  return strokes;
}

/** A segment with each end moved along it by -1.5 to +2.5 px: sketched corners rarely meet exactly. */
function extend(rng: Prng, a: Point, b: Point): [Point, Point] {
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  const [ux, uy] = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
  const s = rng.uniform(-1.5, 2.5),
    e = rng.uniform(-1.5, 2.5);
  return [
    [a[0] - ux * s, a[1] - uy * s],
    [b[0] + ux * e, b[1] + uy * e],
  ];
}

/** A line drawn by hand: pieces of about 3 px, bent sideways by a slow sway and a little tremor. */
function wobblyLine(rng: Prng, [a, b]: [Point, Point], pen: () => number): Stroke[] {
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]);
  const n = Math.max(1, Math.round(len / 3));
  const [nx, ny] = len === 0 ? [0, 0] : [-(b[1] - a[1]) / len, (b[0] - a[0]) / len];
  const sway = rng.uniform(-1.2, 1.2),
    phase = rng.uniform(0, Math.PI);
  const pts: Point[] = [];
  for (let i = 0; i <= n; i++) {
    const t = i / n;
    const off =
      (i === 0 || i === n ? 0 : rng.uniform(-0.35, 0.35)) +
      sway * Math.sin(Math.PI * t + phase) * Math.sin(Math.PI * t);
    pts.push([a[0] + (b[0] - a[0]) * t + nx * off, a[1] + (b[1] - a[1]) * t + ny * off]);
  }
  const out: Stroke[] = [];
  for (let i = 0; i + 1 < pts.length; i++) out.push({ a: pts[i]!, b: pts[i + 1]!, width: pen() });
  return out;
}

/** Parallel hatching inside the shape, lines 3 to 5 px apart in a random direction, ends a little off the edge. */
function hatch(rng: Prng, o: Outlined, pen: () => number): Stroke[] {
  const field = shapeField(o.shape, o.cx, o.cy, o.radius);
  const angle = rng.uniform(0, Math.PI);
  const u: Point = [Math.cos(angle), Math.sin(angle)];
  const v: Point = [-u[1], u[0]];
  const reach = 1.2 * o.radius;
  const out: Stroke[] = [];
  for (let off = -reach; off <= reach; off += rng.uniform(3, 5)) {
    const inside: number[] = [];
    for (let s = -reach; s <= reach; s += 0.5)
      if (field(o.cx + s * u[0] + off * v[0], o.cy + s * u[1] + off * v[1]) < -1) inside.push(s);
    if (inside.length < 2) continue;
    const s0 = inside[0]! + rng.uniform(-1, 1),
      s1 = inside[inside.length - 1]! + rng.uniform(-1, 1);
    out.push({
      a: [o.cx + s0 * u[0] + off * v[0], o.cy + s0 * u[1] + off * v[1]],
      b: [o.cx + s1 * u[0] + off * v[0], o.cy + s1 * u[1] + off * v[1]],
      width: pen() * 0.8,
    });
  }
  return out;
}

/**
 * The i-th evaluation drawing: shapes and positions in turn (as sketch.ts's cases), the size, colours and the hand
 * drawn from its own seed range, which no training drawing uses (those come from scene seeds through
 * scribbleTrainingRng). The prompt names colour, shape and background but not the position.
 */
export function scribbleCase(i: number): Sketch {
  const rng = new Prng(CASE_HAND + i);
  const shape = SHAPES[i % SHAPES.length]!;
  const position = POSITIONS[(i + Math.floor(i / SHAPES.length)) % POSITIONS.length]!;
  const colour = COLOURS[(i * 3 + 1) % COLOURS.length]!;
  const background = rng.pick(COLOURS.filter((c) => c !== colour));
  const size = rng.pick(SIZES);
  const [ax, ay] = POSITION_ANCHOR[position];
  const centre: Point = [
    ax + rng.uniform(-JITTER.position, JITTER.position),
    ay + rng.uniform(-JITTER.position, JITTER.position),
  ];
  const radius = SIZE_RADIUS[size] * (1 + rng.uniform(-JITTER.size, JITTER.size));
  const image = drawScribble(rng, [{ shape, cx: centre[0], cy: centre[1], radius }]);
  const article = /^[aeiou]/.test(colour) ? "an" : "a";
  return {
    image,
    prompt: `${article} ${colour} ${shape}, ${background} background`,
    expected: { colour, shape, background, position },
    centre,
  };
}

export function scribbleCases(count: number): Sketch[] {
  return Array.from({ length: count }, (_, i) => scribbleCase(i));
}

/** Generator seeds of the training drawings start here: scene seed + this, below every evaluation case's seed. */
const TRAINING_HAND = 0x1000_0000;
/** Evaluation cases use generator seeds from here on. */
const CASE_HAND = 0x5c21_bb1e;

/** The hand of the training drawing of scene `seed`: a stream of its own, apart from the scene's and the cases'. */
export function scribbleTrainingRng(seed: number): Prng {
  if (!Number.isInteger(seed) || seed < 0 || TRAINING_HAND + seed >= CASE_HAND)
    throw new RangeError(`scene seed ${seed}: training drawings take seeds 0 to ${CASE_HAND - TRAINING_HAND - 1}`);
  return new Prng(TRAINING_HAND + seed);
}
