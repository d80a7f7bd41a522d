import type { RgbImage } from "../../src/image/codec.js";
import { randomCaption, type ObjectWords } from "./caption.js";
import { HALF_EXTENT, shapeField } from "./geometry.js";
import { isHeldOut } from "./held-out.js";
import { Prng } from "./prng.js";
import {
  COLOURS,
  IMAGE_SIZE,
  JITTER,
  opposite,
  PALETTE,
  POSITION_ANCHOR,
  POSITIONS,
  SHAPES,
  SIZE_RADIUS,
  SIZES,
  type ColourName,
  type PositionName,
} from "./world.js";

/**
 * Scenes of the shapes world: one or two flat-coloured objects on a flat background, with a caption. A scene is a
 * pure function of its seed, so the training set, the tests and the evaluation can all regenerate any picture.
 */

export interface SceneObject extends ObjectWords {
  /** Centre of the bounding box, pixels. */
  readonly cx: number;
  readonly cy: number;
  /** Nominal radius after jitter, pixels. */
  readonly radius: number;
}

export interface Scene {
  readonly seed: number;
  readonly background: ColourName;
  readonly objects: readonly SceneObject[];
  readonly caption: string;
}

export interface SceneOptions {
  /** Share of scenes with two objects (default 0.2). */
  readonly twoObjectRate?: number;
  /** Never produce a held-out colour x shape x background combination (default true: training data). */
  readonly excludeHeldOut?: boolean;
}

/** Places a described object with the jitter of its position and size. */
export function placeObject(rng: Prng, words: ObjectWords): SceneObject {
  const [ax, ay] = POSITION_ANCHOR[words.position];
  return {
    ...words,
    cx: ax + rng.uniform(-JITTER.position, JITTER.position),
    cy: ay + rng.uniform(-JITTER.position, JITTER.position),
    radius: SIZE_RADIUS[words.size] * (1 + rng.uniform(-JITTER.size, JITTER.size)),
  };
}

/** Places the objects; redraws the jitter in the rare case two bounding boxes would touch. */
function placeApart(rng: Prng, words: readonly ObjectWords[]): SceneObject[] {
  for (;;) {
    const objects = words.map((w) => placeObject(rng, w));
    const [a, b] = objects;
    if (!a || !b) return objects;
    const gap = HALF_EXTENT * (a.radius + b.radius) + 1;
    if (Math.abs(a.cx - b.cx) >= gap || Math.abs(a.cy - b.cy) >= gap) return objects;
  }
}

export function sampleScene(seed: number, options: SceneOptions = {}): Scene {
  const { twoObjectRate = 0.2, excludeHeldOut = true } = options;
  const rng = new Prng(seed);
  const background = rng.pick(COLOURS);
  const pickWords = (position: PositionName, sizes: readonly (typeof SIZES)[number][]): ObjectWords => {
    for (;;) {
      const colour = rng.pick(COLOURS);
      const shape = rng.pick(SHAPES);
      if (colour === background || (excludeHeldOut && isHeldOut(colour, shape, background))) continue;
      return { colour, shape, size: rng.pick(sizes), position };
    }
  };

  let words: ObjectWords[];
  if (rng.chance(twoObjectRate)) {
    // Two objects sit at opposite edges (30 px apart), never both big, so their boxes cannot overlap.
    const a = rng.pick(POSITIONS.filter((p) => p !== "centre"));
    const b = POSITIONS.find((p) => opposite(a, p))!;
    const first = pickWords(a, SIZES);
    words = [first, pickWords(b, first.size === "big" ? ["small"] : SIZES)];
  } else {
    words = [pickWords(rng.pick(POSITIONS), SIZES)];
  }
  const objects = placeApart(rng, words);
  return { seed, background, objects, caption: randomCaption(rng, words, background) };
}

/** Draws a scene: background, then each object with anti-aliased edges. */
export function renderScene(scene: Pick<Scene, "background" | "objects">, size = IMAGE_SIZE): RgbImage {
  const data = new Uint8Array(size * size * 3);
  const bg = PALETTE[scene.background];
  for (let i = 0; i < size * size; i++) data.set(bg, i * 3);
  // Coverage is blended in floats per object and rounded once per object, like painting layer over layer.
  for (const o of scene.objects) {
    const field = shapeField(o.shape, o.cx, o.cy, o.radius);
    const colour = PALETTE[o.colour];
    const reach = HALF_EXTENT * o.radius + 1;
    const x0 = Math.max(0, Math.floor(o.cx - reach)),
      x1 = Math.min(size - 1, Math.ceil(o.cx + reach));
    const y0 = Math.max(0, Math.floor(o.cy - reach)),
      y1 = Math.min(size - 1, Math.ceil(o.cy + reach));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const coverage = Math.min(1, Math.max(0, 0.5 - field(x + 0.5, y + 0.5)));
        if (coverage === 0) continue;
        const p = (y * size + x) * 3;
        for (let k = 0; k < 3; k++) data[p + k] = Math.round(data[p + k]! * (1 - coverage) + colour[k] * coverage);
      }
    }
  }
  return { width: size, height: size, data };
}
