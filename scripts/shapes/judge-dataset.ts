/**
 * Judges a folder of scenes written by make-dataset.ts, or other pictures of the same scenes (a VAE's
 * reconstructions, say) given as a raw uint8 file in the same layout, against the scenes' own descriptions.
 * Prints one JSON object: the single-object scenes judged and the share right per attribute.
 *
 *   npx tsx scripts/shapes/judge-dataset.ts --data DIR [--images FILE]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { judge } from "./judge.js";
import type { DatasetManifest } from "./make-dataset.js";
import type { SceneObject } from "./scene.js";
import type { ColourName } from "./world.js";

const ATTRIBUTES = ["background", "colour", "shape", "position", "size"] as const;

export interface DatasetScores {
  readonly count: number;
  readonly rates: Readonly<Record<(typeof ATTRIBUTES)[number] | "all", number>>;
}

export function judgeDataset(folder: string, imagesFile?: string): DatasetScores {
  const m = JSON.parse(readFileSync(join(folder, "dataset.json"), "utf8")) as DatasetManifest;
  const images = readFileSync(imagesFile ?? join(folder, m.images));
  const size = m.width * m.height * 3;
  if (images.length !== m.count * size)
    throw new Error(`${imagesFile ?? m.images}: ${images.length} bytes, expected ${m.count} images of ${size}`);
  const lines = readFileSync(join(folder, m.captions), "utf8").trim().split("\n");
  const right = { background: 0, colour: 0, shape: 0, position: 0, size: 0, all: 0 };
  let n = 0;
  lines.forEach((line, i) => {
    const scene = JSON.parse(line) as { background: ColourName; objects: SceneObject[] };
    if (scene.objects.length !== 1) return;
    const o = scene.objects[0]!;
    const j = judge({ width: m.width, height: m.height, data: images.subarray(i * size, (i + 1) * size) });
    const got = {
      background: j.background,
      colour: j.object?.colour,
      shape: j.object?.shape,
      position: j.object?.position,
      size: j.object?.size,
    };
    const want = { background: scene.background, colour: o.colour, shape: o.shape, position: o.position, size: o.size };
    let all = true;
    for (const a of ATTRIBUTES) {
      if (got[a] === want[a]) right[a]++;
      else all = false;
    }
    if (all) right.all++;
    n++;
  });
  const rates = Object.fromEntries(Object.entries(right).map(([k, v]) => [k, n ? v / n : 0])) as DatasetScores["rates"];
  return { count: n, rates };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { data: { type: "string" }, images: { type: "string" } } });
  if (!values.data) throw new Error("--data DIR is required (a folder written by make-dataset.ts)");
  console.log(JSON.stringify(judgeDataset(values.data, values.images)));
}
