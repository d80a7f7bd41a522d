/**
 * Writes the training set of the scribble ControlNet of the tiny shapes model: N scenes (scene.ts, as
 * make-dataset.ts draws them), for each a rough pen drawing of its objects (scribble-sketch.ts: dark ink on light
 * paper, as a user draws one) and the control map the product makes of that drawing: the drawing goes as a PNG
 * through the pipeline's own controlMap (src/pipeline/control-maps.ts) with module "scribble" at the default ink
 * threshold, exactly what `diffuse generate --control drawing.png --control-type scribble` feeds the ControlNet.
 *
 *   npx tsx scripts/shapes/make-scribble-dataset.ts --count 20000 --seed 0 --out .cache/tiny-shapes-scribble-data
 *   npx tsx scripts/shapes/make-scribble-dataset.ts --digest      (prints the generator's source digest; writes nothing)
 *
 * Files: images.u8 (N x 64 x 64 x 3 scenes), controls.u8 (N x 64 x 64: the map, one channel, 0 or 255; the
 * map's three channels are equal, which is checked), captions.jsonl ({seed, caption, unplaced}: the scene's caption
 * and one that leaves out every position word), previews/ (the first drawings and maps as PNGs), dataset.json.
 */
import { createHash } from "node:crypto";
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SCRIBBLE } from "../../src/control/scribble.js";
import { encodePng, type RgbImage } from "../../src/image/codec.js";
import { controlMap } from "../../src/pipeline/control-maps.js";
import { sourceDigest } from "./make-dataset.js";
import { renderScene, sampleScene, type Scene } from "./scene.js";
import { drawScribble, scribbleTrainingRng } from "./scribble-sketch.js";
import { IMAGE_SIZE } from "./world.js";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The sibling sources of this generator, and the preprocessing code of the product it runs the drawings through. */
export function scribbleSourceDigest(): string {
  const h = createHash("sha256").update(sourceDigest(HERE, "make-scribble-dataset.ts"));
  for (const file of [
    "../../src/control/scribble.ts",
    "../../src/control/grey.ts",
    "../../src/pipeline/control-maps.ts",
  ])
    h.update(file)
      .update("\0")
      .update(readFileSync(join(HERE, file)));
  return h.digest("hex");
}

/** The product's map of a drawing: PNG bytes through controlMap, module scribble, its default ink threshold. */
export async function scribbleMap(drawing: RgbImage): Promise<RgbImage> {
  return controlMap(
    {
      image: await encodePng(drawing),
      model: "",
      module: SCRIBBLE.name,
      weight: 1,
      guidanceStart: 0,
      guidanceEnd: 1,
      resizeMode: "Crop and Resize",
      thresholdA: SCRIBBLE.thresholdA!.default,
    },
    IMAGE_SIZE,
    IMAGE_SIZE,
  );
}

/**
 * The scene in the words a user types beside a drawing (and the evaluation's prompts use): colours, shapes and the
 * background, but neither position nor size, which the drawing shows.
 */
export function unplacedCaption(scene: Scene): string {
  const body = scene.objects.map((o) => `${o.colour} ${o.shape}`);
  return `a ${body.join(" and a ")}, ${scene.background} background`.replace(/\ba (?=[aeiou])/g, "an ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "20000" },
      seed: { type: "string", default: "0" },
      out: { type: "string", default: ".cache/tiny-shapes-scribble-data" },
      previews: { type: "string", default: "16" },
      digest: { type: "boolean", default: false },
    },
  });
  if (values.digest) {
    console.log(scribbleSourceDigest());
    return;
  }
  const count = Number(values.count),
    firstSeed = Number(values.seed),
    previews = Number(values.previews);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count ${values.count}: expected a positive integer`);
  if (!Number.isInteger(firstSeed) || firstSeed < 0)
    throw new Error(`--seed ${values.seed}: expected a non-negative integer`);
  const out = values.out!;
  const start = performance.now();
  mkdirSync(join(out, "previews"), { recursive: true });
  const images = createWriteStream(join(out, "images.u8"));
  const controls = createWriteStream(join(out, "controls.u8"));
  const captions: string[] = [];
  const pixels = IMAGE_SIZE * IMAGE_SIZE;
  for (let i = 0; i < count; i++) {
    const scene = sampleScene(firstSeed + i);
    const drawing = drawScribble(scribbleTrainingRng(scene.seed), scene.objects);
    const map = await scribbleMap(drawing);
    const channel = new Uint8Array(pixels);
    for (let p = 0; p < pixels; p++) {
      const [r, g, b] = [map.data[p * 3]!, map.data[p * 3 + 1]!, map.data[p * 3 + 2]!];
      if (r !== g || r !== b)
        throw new Error(
          `scene ${scene.seed}: the scribble map's channels differ at pixel ${p}; controls.u8 keeps one channel`,
        );
      channel[p] = r;
    }
    if (i < previews) {
      writeFileSync(join(out, "previews", `${i}-drawing.png`), await encodePng(drawing));
      writeFileSync(join(out, "previews", `${i}-map.png`), await encodePng(map));
      writeFileSync(join(out, "previews", `${i}-scene.png`), await encodePng(renderScene(scene)));
    }
    if (!images.write(renderScene(scene).data))
      await new Promise<void>((resolve) => images.once("drain", () => resolve()));
    if (!controls.write(channel)) await new Promise<void>((resolve) => controls.once("drain", () => resolve()));
    captions.push(JSON.stringify({ seed: scene.seed, caption: scene.caption, unplaced: unplacedCaption(scene) }));
  }
  await Promise.all(
    [images, controls].map(
      (s) => new Promise<void>((resolve, reject) => s.end((e?: Error | null) => (e ? reject(e) : resolve()))),
    ),
  );
  writeFileSync(join(out, "captions.jsonl"), captions.join("\n") + "\n");
  const manifest = {
    count,
    width: IMAGE_SIZE,
    height: IMAGE_SIZE,
    channels: 3,
    firstSeed,
    images: "images.u8",
    controls: "controls.u8",
    captions: "captions.jsonl",
    sourceDigest: scribbleSourceDigest(),
  };
  writeFileSync(join(out, "dataset.json"), JSON.stringify(manifest, null, 2) + "\n");
  console.log(
    `${count} scenes with drawings and scribble maps in ${out} in ${((performance.now() - start) / 1000).toFixed(1)} s`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
