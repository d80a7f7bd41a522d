import type { Prng } from "./prng.js";
import type { ColourName, PositionName, ShapeName, SizeName } from "./world.js";

/**
 * Natural captions for scenes. The phrasing varies (word order, synonyms, optional words) so that the text
 * encoder has to learn what the words mean rather than which slot of one template they fill; the canonical
 * phrasing is fixed so that evaluation prompts do not depend on the generator's random stream.
 */

export interface ObjectWords {
  colour: ColourName;
  shape: ShapeName;
  size: SizeName;
  position: PositionName;
}

const SIZE_WORDS: Readonly<Record<SizeName, readonly string[]>> = {
  small: ["small", "small", "little", "tiny"],
  big: ["big", "big", "large", "huge"],
};

const SHAPE_WORDS: Readonly<Record<ShapeName, readonly string[]>> = {
  circle: ["circle", "circle", "disc", "round dot"],
  square: ["square", "square", "box"],
  triangle: ["triangle"],
  star: ["star"],
  cross: ["cross", "cross", "plus sign"],
};

const POSITION_WORDS: Readonly<Record<PositionName, readonly string[]>> = {
  left: ["on the left", "at the left", "to the left", "on the left side"],
  right: ["on the right", "at the right", "to the right", "on the right side"],
  top: ["at the top", "near the top", "at the top edge", "up top"],
  bottom: ["at the bottom", "near the bottom", "at the bottom edge", "down below"],
  centre: ["in the centre", "in the center", "in the middle", "centred"],
};

/** How the background is named: `{bg}` is replaced by the colour. Some come before the objects, some after. */
const BACKGROUND_AFTER = [
  ", {bg} background",
  " on a {bg} background",
  " over a {bg} backdrop",
  " against {bg}",
  ", {bg} backdrop",
  " with a {bg} background",
];
const BACKGROUND_BEFORE = ["{bg} background with ", "on a {bg} background, ", "a {bg} backdrop and "];

const ARTICLES = ["a ", "a ", "one ", ""];

function objectPhrase(rng: Prng, o: ObjectWords, article: boolean): string {
  // Size and position are left out now and then: real prompts are often partial, and the model should still
  // follow the words that are there.
  const size = rng.chance(0.85) ? `${rng.pick(SIZE_WORDS[o.size])} ` : "";
  const position = rng.chance(0.9) ? ` ${rng.pick(POSITION_WORDS[o.position])}` : "";
  return `${article ? rng.pick(ARTICLES) : ""}${size}${o.colour} ${rng.pick(SHAPE_WORDS[o.shape])}${position}`;
}

/** A random phrasing of one scene. */
export function randomCaption(rng: Prng, objects: readonly ObjectWords[], background: ColourName): string {
  const article = rng.chance(0.8);
  const body = objects.map((o) => objectPhrase(rng, o, article)).join(" and ");
  if (rng.chance(0.25)) return fixArticles(rng.pick(BACKGROUND_BEFORE).replace("{bg}", background) + body);
  return fixArticles(body + rng.pick(BACKGROUND_AFTER).replace("{bg}", background));
}

/** "a orange" -> "an orange": every word that can follow an article is ours, so the vowel rule is exact. */
function fixArticles(text: string): string {
  return text.replace(/\ba (?=[aeiou])/g, "an ");
}

/** The fixed phrasing used for evaluation prompts: every attribute named, in the commonest words. */
export function canonicalCaption(o: ObjectWords, background: ColourName): string {
  return `a ${o.size} ${o.colour} ${o.shape} ${POSITION_WORDS[o.position][0]}, ${background} background`;
}
