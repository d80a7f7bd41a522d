import type { RgbImage } from "../../src/image/codec.js";
import { Prng } from "./prng.js";
import { renderScene } from "./scene.js";
import { measureMask, type MaskStats, type ShapeFeatures } from "./shape-features.js";
import {
  COLOURS,
  JITTER,
  PALETTE,
  POSITION_ANCHOR,
  POSITIONS,
  SHAPES,
  SIZE_RADIUS,
  type ColourName,
  type PositionName,
  type Rgb,
  type ShapeName,
  type SizeName,
} from "./world.js";

/**
 * Reads a picture of the shapes world back into words, by plain image analysis on the known palette: the
 * background is the commonest palette colour along the border; objects are connected regions far from it; each
 * object's colour is the nearest palette colour of its core, its position the anchor nearest its centroid, and
 * its shape the one whose measured outline features (shape-features.ts) are closest to those of ideal renders.
 * It judges generated pictures, so it must not need them to be clean: specks are dropped, and blurred edges
 * are cut where the pixel is halfway between object and background.
 */

export interface ObjectReport {
  readonly colour: ColourName;
  readonly shape: ShapeName;
  readonly position: PositionName;
  readonly size: SizeName;
  /** Pixels at least halfway to the object colour. */
  readonly area: number;
  readonly centroid: readonly [number, number];
  readonly features: ShapeFeatures;
}

export interface Judgement {
  readonly background: ColourName;
  /** The largest object, if any region stands out from the background. */
  readonly object?: ObjectReport;
  /** Every object found, largest first. */
  readonly objects: readonly ObjectReport[];
}

export interface JudgeOptions {
  /** A pixel this far (RGB distance) from the background may belong to an object. */
  readonly foregroundDistance?: number;
  /** Regions smaller than this many pixels are noise. */
  readonly minArea?: number;
}

const BORDER = 2;

export function judge(image: RgbImage, options: JudgeOptions = {}): Judgement {
  const { background, objects } = extractObjects(image, options);
  const reports = objects.map((o) => describe(o.stats, o.colour)).sort((a, b) => b.area - a.area);
  return { background, object: reports[0], objects: reports };
}

interface Extracted {
  background: ColourName;
  objects: { colour: ColourName; stats: MaskStats }[];
}

/** Background and object masks with their measurements, before any shape is named. */
function extractObjects(image: RgbImage, options: JudgeOptions): Extracted {
  const { foregroundDistance = 40, minArea = 8 } = options;
  const { width, height, data } = image;
  const rgb = (p: number): Rgb => [data[p * 3]!, data[p * 3 + 1]!, data[p * 3 + 2]!];

  // Background: majority vote of the border ring, then its observed mean (a generated background is rarely the
  // exact palette value, and the foreground test should measure from what is there).
  const votes = new Map<ColourName, number[]>();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (x >= BORDER && x < width - BORDER && y >= BORDER && y < height - BORDER) continue;
      const p = y * width + x;
      const name = nearestColour(rgb(p));
      votes.set(name, [...(votes.get(name) ?? []), p]);
    }
  }
  const [background, bgPixels] = [...votes].sort((a, b) => b[1].length - a[1].length)[0]!;
  const bg = meanColour(bgPixels.map(rgb));

  const candidate = new Uint8Array(width * height);
  for (let p = 0; p < width * height; p++) candidate[p] = distance(rgb(p), bg) > foregroundDistance ? 1 : 0;

  const objects: Extracted["objects"] = [];
  for (const region of components(candidate, width, height)) {
    if (region.length < minArea) continue;
    // The colour from the region's core: edge pixels are blends with the background.
    const dists = region.map((p) => distance(rgb(p), bg));
    const far = Math.max(...dists);
    const core = region.filter((_, i) => dists[i]! >= 0.7 * far);
    const observed = meanColour(core.map(rgb));
    const inside = outline(region, (p) => along(rgb(p), bg, observed), width, height);
    if (inside.length < minArea) continue;
    objects.push({ colour: nearestColour(observed, background), stats: measureMask(inside, width) });
  }
  return { background, objects };
}

function describe(m: MaskStats, colour: ColourName): ObjectReport {
  const shape = classifyShape(m.features);
  const radius = Math.sqrt(m.area / PROTOTYPES[shape].areaPerRadius2);
  return {
    colour,
    shape,
    position: nearestPosition(m.cx, m.cy),
    size: radius < (SIZE_RADIUS.small + SIZE_RADIUS.big) / 2 ? "small" : "big",
    area: m.area,
    centroid: [m.cx, m.cy],
    features: m.features,
  };
}

/**
 * The object's pixels: those at least halfway from the background to the object colour (the outline an ideal
 * render has), judged on the 3x3 mean of that fraction so pixel noise does not fray the edge. Only pixels within
 * one pixel of the region count, so a neighbouring object of a similar colour is not pulled in.
 */
function outline(region: readonly number[], fraction: (p: number) => number, width: number, height: number): number[] {
  const near = new Set<number>();
  for (const p of region) {
    const x = p % width,
      y = Math.floor(p / width);
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx,
          ny = y + dy;
        if (nx >= 0 && ny >= 0 && nx < width && ny < height) near.add(ny * width + nx);
      }
    }
  }
  const inside: number[] = [];
  for (const p of near) {
    const x = p % width,
      y = Math.floor(p / width);
    let sum = 0,
      n = 0;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx,
          ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
        sum += fraction(ny * width + nx);
        n++;
      }
    }
    if (sum / n >= 0.5) inside.push(p);
  }
  return inside.sort((a, b) => a - b);
}

function nearestPosition(x: number, y: number): PositionName {
  let best: PositionName = "centre",
    bestD = Infinity;
  for (const p of POSITIONS) {
    const [ax, ay] = POSITION_ANCHOR[p];
    const d = (x - ax) ** 2 + (y - ay) ** 2;
    if (d < bestD) [best, bestD] = [p, d];
  }
  return best;
}

export function nearestColour(c: Rgb, exclude?: ColourName): ColourName {
  let best: ColourName = COLOURS[0]!,
    bestD = Infinity;
  for (const name of COLOURS) {
    if (name === exclude) continue;
    const d = distance(c, PALETTE[name]);
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

function distance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** Where c falls on the line from `from` (0) to `to` (1). */
function along(c: Rgb, from: Rgb, to: Rgb): number {
  let num = 0,
    den = 0;
  for (let k = 0; k < 3; k++) {
    num += (c[k]! - from[k]!) * (to[k]! - from[k]!);
    den += (to[k]! - from[k]!) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function meanColour(cs: readonly Rgb[]): Rgb {
  const s = [0, 0, 0];
  for (const c of cs) for (let k = 0; k < 3; k++) s[k]! += c[k]!;
  return [s[0]! / cs.length, s[1]! / cs.length, s[2]! / cs.length];
}

/** 8-connected regions of a 0/1 mask, as pixel index lists. */
function components(mask: Uint8Array, width: number, height: number): number[][] {
  const seen = new Uint8Array(mask.length);
  const out: number[][] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || seen[start]) continue;
    const region: number[] = [];
    const stack = [start];
    seen[start] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      region.push(p);
      const x = p % width,
        y = Math.floor(p / width);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx,
            ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
          const q = ny * width + nx;
          if (mask[q] && !seen[q]) {
            seen[q] = 1;
            stack.push(q);
          }
        }
      }
    }
    out.push(region);
  }
  return out;
}

// ---- shape prototypes ----

interface Prototype {
  readonly features: ShapeFeatures;
  /** Mask area / radius², to turn an area back into a size. */
  readonly areaPerRadius2: number;
}

/**
 * How far each feature may stray before it counts as much as a whole unit of distance: the clean renders vary far
 * less than this, but generated shapes have soft corners (a blurred star fills more of its box) and ragged edges.
 */
const FEATURE_SCALE: Readonly<Record<keyof ShapeFeatures, number>> = {
  fill: 0.1,
  solidity: 0.08,
  topness: 0.04,
  aspect: 0.15,
  mirror: 0.1,
};

/**
 * The features of each shape, averaged over ideal renders at both sizes with the generator's size jitter and
 * sub-pixel offsets, measured through the same mask extraction as any judged image. Derived from the renderer,
 * so a change to a shape's geometry moves its prototype with it.
 */
const PROTOTYPES: Readonly<Record<ShapeName, Prototype>> = buildPrototypes();

function buildPrototypes(): Record<ShapeName, Prototype> {
  const rng = new Prng(0x5eed);
  const out = {} as Record<ShapeName, Prototype>;
  for (const shape of SHAPES) {
    const sums: Record<keyof ShapeFeatures, number> = { fill: 0, solidity: 0, topness: 0, aspect: 0, mirror: 0 };
    let areaRatio = 0,
      n = 0;
    for (const r0 of Object.values(SIZE_RADIUS)) {
      for (const k of [-1, 0, 1]) {
        for (let rep = 0; rep < 3; rep++) {
          const radius = r0 * (1 + k * JITTER.size);
          const image = renderScene({
            background: "black",
            objects: [
              {
                shape,
                colour: "white",
                size: "big",
                position: "centre",
                cx: 32 + rng.uniform(-0.5, 0.5),
                cy: 32 + rng.uniform(-0.5, 0.5),
                radius,
              },
            ],
          });
          const o = judgeMask(image);
          for (const f of Object.keys(sums) as (keyof ShapeFeatures)[]) sums[f] += o.features[f];
          areaRatio += o.area / radius ** 2;
          n++;
        }
      }
    }
    out[shape] = {
      features: {
        fill: sums.fill / n,
        solidity: sums.solidity / n,
        topness: sums.topness / n,
        aspect: sums.aspect / n,
        mirror: sums.mirror / n,
      },
      areaPerRadius2: areaRatio / n,
    };
  }
  return out;
}

/** A white-on-black render measured by the judge's own extraction (no classification: prototypes are being built). */
function judgeMask(image: RgbImage): MaskStats {
  const o = extractObjects(image, {}).objects[0];
  if (!o) throw new Error("shape prototypes: the render has no object");
  return o.stats;
}

export function classifyShape(f: ShapeFeatures): ShapeName {
  let best: ShapeName = "circle",
    bestD = Infinity;
  for (const shape of SHAPES) {
    const p = PROTOTYPES[shape].features;
    let d = 0;
    for (const k of Object.keys(FEATURE_SCALE) as (keyof ShapeFeatures)[]) d += ((f[k] - p[k]) / FEATURE_SCALE[k]) ** 2;
    if (d < bestD) [best, bestD] = [shape, d];
  }
  return best;
}

/** The prototypes, for reports and tests. */
export function shapePrototypes(): Readonly<Record<ShapeName, Prototype>> {
  return PROTOTYPES;
}
