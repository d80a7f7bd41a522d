import { canonicalCaption, type ObjectWords } from "./caption.js";
import { COLOURS, POSITIONS, SHAPES, SIZES, type ColourName, type ShapeName } from "./world.js";

/**
 * Colour x shape x background combinations that never appear in training, so that evaluation measures whether the
 * model composes words it has seen separately rather than recalls pictures it was shown.
 *
 * 30 of the 280 combinations (8 colours x 5 shapes x 7 other backgrounds), 10.7%: six per shape, three or four per
 * colour and per background, and no colour-shape or colour-background pair twice, so each pair of words in a
 * held-out prompt still occurs together in training, only never all three.
 */
export interface Combination {
  readonly colour: ColourName;
  readonly shape: ShapeName;
  readonly background: ColourName;
}

const c = (colour: ColourName, shape: ShapeName, background: ColourName): Combination => ({
  colour,
  shape,
  background,
});

export const HELD_OUT: readonly Combination[] = [
  c("black", "circle", "purple"),
  c("blue", "circle", "red"),
  c("purple", "circle", "black"),
  c("red", "circle", "yellow"),
  c("yellow", "circle", "green"),
  c("green", "circle", "white"),
  c("white", "square", "orange"),
  c("orange", "square", "blue"),
  c("blue", "square", "yellow"),
  c("green", "square", "purple"),
  c("purple", "square", "orange"),
  c("black", "square", "green"),
  c("orange", "triangle", "red"),
  c("red", "triangle", "black"),
  c("yellow", "triangle", "white"),
  c("white", "triangle", "blue"),
  c("green", "triangle", "blue"),
  c("black", "triangle", "red"),
  c("orange", "star", "black"),
  c("yellow", "star", "orange"),
  c("blue", "star", "purple"),
  c("red", "star", "green"),
  c("white", "star", "yellow"),
  c("purple", "star", "white"),
  c("purple", "cross", "yellow"),
  c("blue", "cross", "green"),
  c("black", "cross", "blue"),
  c("red", "cross", "purple"),
  c("green", "cross", "black"),
  c("yellow", "cross", "red"),
];

const HELD_OUT_KEYS = new Set(HELD_OUT.map(key));

function key(x: Combination): string {
  return `${x.colour}/${x.shape}/${x.background}`;
}

export function isHeldOut(colour: ColourName, shape: ShapeName, background: ColourName): boolean {
  return HELD_OUT_KEYS.has(key({ colour, shape, background }));
}

/** All combinations, for checks and reports. */
export function allCombinations(): Combination[] {
  return COLOURS.flatMap((colour) =>
    SHAPES.flatMap((shape) => COLOURS.filter((b) => b !== colour).map((background) => c(colour, shape, background))),
  );
}

/** One evaluation case: the prompt, the seed to generate it with, and what the picture should show. */
export interface EvalCase {
  readonly prompt: string;
  readonly seed: number;
  readonly expected: ObjectWords & { readonly background: ColourName };
}

/**
 * The i-th evaluation prompt (seed i): held-out combinations in turn, with size and position varied so that every
 * combination is asked for at several positions and both sizes across the first 100.
 */
export function heldOutCase(i: number): EvalCase {
  const combo = HELD_OUT[i % HELD_OUT.length]!;
  const round = Math.floor(i / HELD_OUT.length);
  const words: ObjectWords = {
    colour: combo.colour,
    shape: combo.shape,
    size: SIZES[Math.floor(i / 2) % SIZES.length]!,
    position: POSITIONS[(i + round) % POSITIONS.length]!,
  };
  return {
    prompt: canonicalCaption(words, combo.background),
    seed: i,
    expected: { ...words, background: combo.background },
  };
}

export function heldOutCases(count: number): EvalCase[] {
  return Array.from({ length: count }, (_, i) => heldOutCase(i));
}
