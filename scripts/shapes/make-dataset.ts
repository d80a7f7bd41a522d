/**
 * Writes the training set of the tiny shapes model: N scenes as one raw uint8 file (N x 64 x 64 x 3, HWC, row
 * after row) plus their captions as JSON lines, and a small manifest the trainer checks.
 *
 *   npx tsx scripts/shapes/make-dataset.ts --count 20000 --seed 0 --out .cache/tiny-shapes-data
 *   npx tsx scripts/shapes/make-dataset.ts --digest      (prints the generator's source digest; writes nothing)
 */
import { createHash } from "node:crypto";
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isHeldOut } from "./held-out.js";
import { renderScene, sampleScene } from "./scene.js";
import { IMAGE_SIZE } from "./world.js";

export interface DatasetOptions {
  readonly count: number;
  /** Scene i uses seed firstSeed + i. */
  readonly firstSeed: number;
  readonly out: string;
}

export interface DatasetManifest {
  readonly count: number;
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  readonly firstSeed: number;
  readonly images: string;
  readonly captions: string;
  /** Digest of the generator's sources, so a trainer can tell a stale dataset from a current one. */
  readonly sourceDigest: string;
}

/**
 * sha256 over the generator's own sources: this file and every file of scripts/shapes it imports, directly or not,
 * by name order: name, NUL, content, NUL. The trainer asks for it (`--digest`) and regenerates the data when the
 * world has changed since it was written; editing the judge or the evaluation does not touch the scenes.
 */
export function sourceDigest(folder = dirname(fileURLToPath(import.meta.url)), entry = "make-dataset.ts"): string {
  const h = createHash("sha256");
  for (const name of generatorSources(folder, entry))
    h.update(name)
      .update("\0")
      .update(readFileSync(join(folder, name)))
      .update("\0");
  return h.digest("hex");
}

/** `entry` (make-dataset.ts) and the sibling modules it imports (`import ... from "./name.js"`), transitively, sorted. */
export function generatorSources(folder: string, entry = "make-dataset.ts"): string[] {
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const m of readFileSync(join(folder, name), "utf8").matchAll(/^import [^;]*? from "\.\/([\w-]+)\.js";/gm))
      visit(`${m[1]}.ts`);
  };
  visit(entry);
  return [...seen].sort();
}

export async function writeDataset(opts: DatasetOptions): Promise<DatasetManifest> {
  mkdirSync(opts.out, { recursive: true });
  const manifest: DatasetManifest = {
    count: opts.count,
    width: IMAGE_SIZE,
    height: IMAGE_SIZE,
    channels: 3,
    firstSeed: opts.firstSeed,
    images: "images.u8",
    captions: "captions.jsonl",
    sourceDigest: sourceDigest(),
  };
  const images = createWriteStream(join(opts.out, manifest.images));
  const captions: string[] = [];
  for (let i = 0; i < opts.count; i++) {
    const scene = sampleScene(opts.firstSeed + i);
    for (const o of scene.objects) {
      // The split is the point of the held-out evaluation: a leak would make its scores meaningless.
      if (isHeldOut(o.colour, o.shape, scene.background))
        throw new Error(`scene ${scene.seed} holds a held-out combination`);
    }
    if (!images.write(renderScene(scene).data))
      await new Promise<void>((resolve) => images.once("drain", () => resolve()));
    captions.push(
      JSON.stringify({
        seed: scene.seed,
        caption: scene.caption,
        background: scene.background,
        objects: scene.objects,
      }),
    );
  }
  await new Promise<void>((resolve, reject) => images.end((e?: Error | null) => (e ? reject(e) : resolve())));
  writeFileSync(join(opts.out, manifest.captions), captions.join("\n") + "\n");
  writeFileSync(join(opts.out, "dataset.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "20000" },
      seed: { type: "string", default: "0" },
      out: { type: "string", default: ".cache/tiny-shapes-data" },
      digest: { type: "boolean", default: false },
    },
  });
  if (values.digest) {
    console.log(sourceDigest());
    return;
  }
  const count = Number(values.count),
    firstSeed = Number(values.seed);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count ${values.count}: expected a positive integer`);
  if (!Number.isInteger(firstSeed) || firstSeed < 0)
    throw new Error(`--seed ${values.seed}: expected a non-negative integer`);
  const start = performance.now();
  const m = await writeDataset({ count, firstSeed, out: values.out! });
  console.log(
    `${m.count} scenes (${m.width}x${m.height}) in ${values.out} in ${((performance.now() - start) / 1000).toFixed(1)} s`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
