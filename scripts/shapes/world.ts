/**
 * The vocabulary of the shapes world: what can be named in a caption and where it sits in a 64x64 image.
 * The generator, the judge and the held-out split all read these tables, so a change here changes all three.
 */

export const IMAGE_SIZE = 64;

export type Rgb = readonly [number, number, number];

/**
 * Eight colours, each at least ~85 RGB units from every other, so they survive a lossy VAE and a blurry sample
 * and can still be told apart by nearest-palette matching. Objects and backgrounds share the palette.
 */
export const PALETTE = {
  red: [220, 30, 30],
  orange: [255, 140, 0],
  yellow: [250, 220, 30],
  green: [30, 160, 50],
  blue: [30, 70, 220],
  purple: [140, 40, 180],
  white: [245, 245, 245],
  black: [20, 20, 20],
} as const satisfies Record<string, Rgb>;

export type ColourName = keyof typeof PALETTE;
export const COLOURS = Object.keys(PALETTE) as ColourName[];

export const SHAPES = ["circle", "square", "triangle", "star", "cross"] as const;
export type ShapeName = (typeof SHAPES)[number];

export const SIZES = ["small", "big"] as const;
export type SizeName = (typeof SIZES)[number];

export const POSITIONS = ["left", "right", "top", "bottom", "centre"] as const;
export type PositionName = (typeof POSITIONS)[number];

/**
 * Nominal radius in pixels: the circle's radius, and the scale every other shape is drawn at (each fits a box of
 * about 2.1 radii). Big objects at the edge positions stay inside the frame with their jitter
 * (17 - 2 - 1.05 * 13 * 1.08 > 0). Small is no smaller than 18 px across: below that, a VAE with 8x8 latents
 * rounds the corners off squares, crosses and stars.
 */
export const SIZE_RADIUS: Readonly<Record<SizeName, number>> = { small: 9, big: 13 };

/** Where the centre of an object's bounding box sits, in pixels (pixel centres are at i + 0.5). */
export const POSITION_ANCHOR: Readonly<Record<PositionName, readonly [number, number]>> = {
  left: [17, 32],
  right: [47, 32],
  top: [32, 17],
  bottom: [32, 47],
  centre: [32, 32],
};

/** Random variation within one named attribute, so that names describe a range, not a single picture. */
export const JITTER = {
  /** Centroid offset in pixels, each axis. */
  position: 2,
  /** Relative radius change. */
  size: 0.08,
} as const;

/** Positions far enough apart for two objects of the allowed sizes (see scene.ts). */
export function opposite(a: PositionName, b: PositionName): boolean {
  return (
    (a === "left" && b === "right") ||
    (a === "right" && b === "left") ||
    (a === "top" && b === "bottom") ||
    (a === "bottom" && b === "top")
  );
}
