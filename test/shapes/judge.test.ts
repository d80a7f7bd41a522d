import { describe, expect, it } from "vitest";
import type { RgbImage } from "../../src/image/codec.js";
import { judge } from "../../scripts/shapes/judge.js";
import { Prng } from "../../scripts/shapes/prng.js";
import { renderScene, sampleScene, type Scene } from "../../scripts/shapes/scene.js";

const ATTRIBUTES = ["background", "colour", "shape", "position", "size"] as const;
type Attribute = (typeof ATTRIBUTES)[number];

function truth(scene: Scene): Record<Attribute, string> {
  const o = scene.objects[0]!;
  return { background: scene.background, colour: o.colour, shape: o.shape, position: o.position, size: o.size };
}

/** Accuracy per attribute over single-object scenes seeds 0..n-1, the image passed through `degrade`. */
function scores(
  n: number,
  degrade: (image: RgbImage, rng: Prng) => RgbImage = (i) => i,
): Record<Attribute | "all", number> {
  const right = { background: 0, colour: 0, shape: 0, position: 0, size: 0, all: 0 };
  const rng = new Prng(12345);
  for (let seed = 0; seed < n; seed++) {
    const scene = sampleScene(seed, { twoObjectRate: 0, excludeHeldOut: false });
    const j = judge(degrade(renderScene(scene), rng));
    const got: Record<Attribute, string | undefined> = {
      background: j.background,
      colour: j.object?.colour,
      shape: j.object?.shape,
      position: j.object?.position,
      size: j.object?.size,
    };
    const want = truth(scene);
    let all = true;
    for (const a of ATTRIBUTES) {
      if (got[a] === want[a]) right[a]++;
      else all = false;
    }
    if (all) right.all++;
  }
  return Object.fromEntries(Object.entries(right).map(([k, v]) => [k, v / n])) as Record<Attribute | "all", number>;
}

function table(title: string, s: Record<string, number>): string {
  return [title, ...Object.entries(s).map(([k, v]) => `  ${k.padEnd(11)} ${(100 * v).toFixed(1)}%`)].join("\n");
}

/** What a decoder does to edges and flat areas: a 3x3 blur and per-pixel noise. */
function blurAndNoise(image: RgbImage, rng: Prng): RgbImage {
  const { width, height, data } = image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < 3; k++) {
        let s = 0,
          n = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy,
              xx = x + dx;
            if (yy < 0 || xx < 0 || yy >= height || xx >= width) continue;
            s += data[(yy * width + xx) * 3 + k]!;
            n++;
          }
        }
        const noise = (rng.next() + rng.next() + rng.next() - 1.5) * 20;
        out[(y * width + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(s / n + noise)));
      }
    }
  }
  return { width, height, data: out };
}

describe("shapes judge", () => {
  it("reads background, colour, shape, position and size of 500 generated single-object scenes (>= 98% each)", () => {
    const s = scores(500);
    console.log(table("judge on 500 generated single-object scenes", s));
    for (const a of ATTRIBUTES) expect(s[a], a).toBeGreaterThanOrEqual(0.98);
  });

  it("still reads them when the edges are blurred and the pixels noisy (>= 95% each)", () => {
    const s = scores(300, blurAndNoise);
    console.log(table("judge on 300 blurred, noisy scenes", s));
    for (const a of ATTRIBUTES) expect(s[a], a).toBeGreaterThanOrEqual(0.95);
  });

  it("finds both objects of two-object scenes, with their colours and positions", () => {
    let right = 0,
      n = 0;
    for (let seed = 0; n < 200; seed++) {
      const scene = sampleScene(seed, { twoObjectRate: 1 });
      n++;
      const j = judge(renderScene(scene));
      const want = scene.objects.map((o) => `${o.colour} ${o.shape} ${o.position}`).sort();
      const got = j.objects.map((o) => `${o.colour} ${o.shape} ${o.position}`).sort();
      if (JSON.stringify(got) === JSON.stringify(want)) right++;
    }
    expect(right / n).toBeGreaterThanOrEqual(0.95);
  });

  it("reports no object on a plain background", () => {
    const j = judge(renderScene({ background: "green", objects: [] }));
    expect(j.background).toBe("green");
    expect(j.object).toBeUndefined();
  });
});
