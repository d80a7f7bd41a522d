/**
 * Measures both watermarks on synthetic images under ordinary edits and prints a markdown table.
 *
 *   npx tsx scripts/eval-watermark.ts [--images 50] [--unmarked 200] [--json out.json]
 *
 * Images: deterministic synthetic pictures of 512x512 to 1024x1024 (some not square) of twelve kinds, from
 * smooth (gradients, clouds, flat) to busy (film grain, gravel-like texture, stripes, checkerboards), dark and
 * light. Each is marked twice (dwtDct with SD1's message as Stable Diffusion 1 did; our robust mark with a
 * 48-bit payload), then attacked with sharp:
 *   none; JPEG quality 50; resize to 0.5x (sharp's default Lanczos-3); crop keeping 90 % of the width and of
 *   the height at a random offset; brightness +20 % (sharp modulate, lightness x1.2); and all of those combined
 *   (crop, resize 0.5x, brightness +20 %) followed by JPEG quality 75.
 * Per attack: bit accuracy of the decoded message and the rate of exact recovery (dwtDct: all 136 bits as
 * the reference decoder reads them; robust: the payload verified by its CRC). Then false positives of
 * detectWatermark on separate unmarked images.
 */
import { brighten, crop as cropAt, halve, jpeg } from "./watermark-attacks.js";
import { writeFileSync } from "node:fs";
import type { RgbImage } from "../src/image/codec.js";
import {
  decodeDwtDct,
  DWT_DCT_MIN_PIXELS,
  embedDwtDct,
  SD1_WATERMARK_BITS,
} from "../src/responsible/watermark/dwt-dct.js";
import { detectWatermark } from "../src/responsible/watermark/detect.js";
import {
  DIFFUSE_GENERATOR_ID,
  jobIdFromString,
  psnr,
  RobustWatermark,
  type RobustPayload,
} from "../src/responsible/watermark/robust.js";

// ---------------------------------------------------------------- images

/** A small seeded generator (mulberry32) so every run sees the same images and attacks. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Smoothly interpolated random grid values: texture whose grain is `cell` pixels. */
function valueNoise(w: number, h: number, cell: number, rnd: () => number): Float64Array {
  const gw = Math.ceil(w / cell) + 2;
  const grid = Float64Array.from({ length: gw * (Math.ceil(h / cell) + 2) }, () => rnd());
  const out = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const fx = x / cell,
        fy = y / cell,
        ix = Math.floor(fx),
        iy = Math.floor(fy);
      const tx = (fx - ix) ** 2 * (3 - 2 * (fx - ix)),
        ty = (fy - iy) ** 2 * (3 - 2 * (fy - iy));
      const a = grid[iy * gw + ix]!,
        b = grid[iy * gw + ix + 1]!,
        c = grid[(iy + 1) * gw + ix]!,
        d = grid[(iy + 1) * gw + ix + 1]!;
      out[y * w + x] = a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
    }
  }
  return out;
}

/** Octaves of value noise, each half the grain and 0.55 the amplitude of the last; values about 0..1. */
function fractal(w: number, h: number, cell: number, octaves: number, rnd: () => number): Float64Array {
  const out = new Float64Array(w * h);
  let amp = 1,
    total = 0;
  for (let o = 0; o < octaves; o++, cell /= 2, amp *= 0.55) {
    const n = valueNoise(w, h, Math.max(1, cell), rnd);
    for (let i = 0; i < out.length; i++) out[i]! += amp * n[i]!;
    total += amp;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

const KINDS = [
  "shapes",
  "clouds",
  "grain",
  "stripes",
  "clouds+shapes",
  "texture+shapes",
  "gravel",
  "night",
  "light",
  "checker",
  "flat",
  "landscape",
] as const;
const SIZES = [
  [512, 512],
  [512, 512],
  [640, 512],
  [512, 768],
  [768, 768],
  [768, 512],
  [1024, 768],
  [1024, 1024],
] as const;

function synthesize(seed: number, kindIndex: number): { image: RgbImage; kind: string } {
  const rnd = seeded(seed);
  const [w, h] = SIZES[Math.floor(rnd() * SIZES.length)]!;
  const kind = KINDS[kindIndex % KINDS.length]!;
  const px = new Float64Array(w * h * 3);
  const c1 = [rnd() * 255, rnd() * 255, rnd() * 255],
    c2 = [rnd() * 255, rnd() * 255, rnd() * 255];
  const angle = rnd() * 2 * Math.PI,
    ca = Math.cos(angle),
    sa = Math.sin(angle);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x / w - 0.5) * ca + (y / h - 0.5) * sa));
      for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = c1[c]! * (1 - t) + c2[c]! * t;
    }
  }
  const texture = (n: ArrayLike<number>, amp: number, tint: readonly number[]) => {
    for (let p = 0; p < w * h; p++) for (let c = 0; c < 3; c++) px[p * 3 + c]! += (n[p]! - 0.5) * amp * tint[c]!;
  };
  const shapes = (count: number) => {
    for (let s = 0; s < count; s++) {
      const col = [rnd() * 255, rnd() * 255, rnd() * 255];
      const cx = rnd() * w,
        cy = rnd() * h,
        r = 20 + rnd() * Math.min(w, h) * 0.3,
        rect = rnd() < 0.5,
        soft = 1 + rnd() * 4;
      for (let y = Math.max(0, Math.floor(cy - r - 8)); y < Math.min(h, cy + r + 8); y++) {
        for (let x = Math.max(0, Math.floor(cx - r - 8)); x < Math.min(w, cx + r + 8); x++) {
          const d = rect ? Math.max(Math.abs(x - cx), Math.abs(y - cy)) - r : Math.hypot(x - cx, y - cy) - r;
          const a = Math.min(1, Math.max(0, 0.5 - d / soft));
          for (let c = 0; c < 3 && a > 0; c++)
            px[(y * w + x) * 3 + c] = px[(y * w + x) * 3 + c]! * (1 - a) + col[c]! * a;
        }
      }
    }
  };
  switch (kind) {
    case "shapes":
      shapes(3 + Math.floor(rnd() * 12));
      break;
    case "clouds":
      texture(fractal(w, h, 64 + rnd() * 128, 7, rnd), 120 + rnd() * 120, [1, 0.8 + rnd() * 0.4, 0.7 + rnd() * 0.6]);
      break;
    case "grain":
      texture(
        Float64Array.from({ length: w * h }, () => rnd()),
        30 + rnd() * 60,
        [1, 1, 1],
      );
      break;
    case "stripes": {
      shapes(3 + Math.floor(rnd() * 8));
      const period = 6 + rnd() * 30;
      const wave = Float64Array.from(
        { length: w * h },
        (_, p) => 0.5 + 0.5 * Math.sin((((p % w) * ca + Math.floor(p / w) * sa) / period) * 2 * Math.PI),
      );
      texture(wave, 50, [1, 1, 1]);
      break;
    }
    case "clouds+shapes":
      texture(fractal(w, h, 64 + rnd() * 128, 7, rnd), 120 + rnd() * 120, [1, 0.9, 0.8]);
      shapes(3 + Math.floor(rnd() * 8));
      break;
    case "texture+shapes":
      texture(fractal(w, h, 8 + rnd() * 16, 4, rnd), 60 + rnd() * 80, [1, 1, 1]);
      shapes(3 + Math.floor(rnd() * 8));
      break;
    case "gravel":
      texture(fractal(w, h, 4 + rnd() * 8, 4, rnd), 90 + rnd() * 45, [1, 0.9, 0.8]);
      break;
    case "night": {
      for (let i = 0; i < px.length; i++) px[i]! *= 0.12;
      texture(fractal(w, h, 32, 5, rnd), 20, [0.5, 0.6, 1]);
      for (let s = 0; s < 40; s++) {
        const cx = rnd() * w,
          cy = rnd() * h,
          r = 2 + rnd() * 6;
        for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(h, cy + r); y++) {
          for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(w, cx + r); x++)
            if (Math.hypot(x - cx, y - cy) < r) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = 250;
        }
      }
      break;
    }
    case "light":
      for (let i = 0; i < px.length; i++) px[i] = 160 + px[i]! * 0.3;
      texture(fractal(w, h, 128, 4, rnd), 30, [1, 1, 1]);
      break;
    case "checker": {
      const cell = 8 + Math.floor(rnd() * 56);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          if ((Math.floor(x / cell) + Math.floor(y / cell)) & 1)
            for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = 255 - px[(y * w + x) * 3 + c]!;
      break;
    }
    case "flat": {
      const m = [rnd() * 255, rnd() * 255, rnd() * 255];
      for (let p = 0; p < w * h; p++)
        for (let c = 0; c < 3; c++) px[p * 3 + c] = m[c]! + (px[p * 3 + c]! - m[c]!) * 0.08;
      break;
    }
    case "landscape": {
      const horizon = h * (0.4 + rnd() * 0.3);
      const ground = fractal(w, h, 16 + rnd() * 32, 5, rnd);
      const sky = [90 + rnd() * 60, 140 + rnd() * 60, 200 + rnd() * 55],
        soil = [60 + rnd() * 80, 90 + rnd() * 70, 30 + rnd() * 40];
      const sun = { x: rnd() * w, y: horizon * rnd() * 0.7, r: 15 + rnd() * 40 };
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const p = (y * w + x) * 3;
          if (y < horizon) {
            const t = y / horizon,
              glow = Math.max(0, 1 - Math.hypot(x - sun.x, y - sun.y) / sun.r);
            for (let c = 0; c < 3; c++) px[p + c] = sky[c]! * (0.7 + 0.3 * t) + 255 * Math.min(1, glow * 3) * 0.8;
          } else {
            const depth = (y - horizon) / (h - horizon);
            for (let c = 0; c < 3; c++)
              px[p + c] = soil[c]! * (0.6 + 0.5 * depth) + (ground[y * w + x]! - 0.5) * 120 * depth;
          }
        }
      }
      break;
    }
  }
  const data = new Uint8Array(px.length);
  for (let i = 0; i < px.length; i++) data[i] = Math.max(0, Math.min(255, Math.round(px[i]!)));
  return { image: { width: w, height: h, data }, kind };
}

// ---------------------------------------------------------------- attacks

/** A 10% crop at a random offset. */
const crop = (image: RgbImage, rnd: () => number) => cropAt(image, rnd(), rnd());

const ATTACKS: readonly [string, (image: RgbImage, rnd: () => number) => Promise<RgbImage>][] = [
  ["none", async (image) => image],
  ["JPEG 50", (image) => jpeg(image, 50)],
  ["resize 0.5x", halve],
  ["crop 10%", crop],
  ["brightness +20%", brighten],
  ["all + JPEG 75", async (image, rnd) => jpeg(await brighten(await halve(await crop(image, rnd))), 75)],
];

// ---------------------------------------------------------------- measurement

interface Tally {
  bitsRight: number;
  bitsTotal: number;
  exact: number;
  refused: number;
}

function argument(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function payloadBits(p: RobustPayload): number[] {
  return [
    ...Array.from({ length: 16 }, (_, i) => (p.generator >> (15 - i)) & 1),
    ...Array.from({ length: 32 }, (_, i) => Math.floor(p.job / 2 ** (31 - i)) % 2),
  ];
}

async function main(): Promise<void> {
  const imageCount = argument("--images", 50);
  const unmarkedCount = argument("--unmarked", 200);
  const jsonIndex = process.argv.indexOf("--json");
  const watermark = new RobustWatermark();
  const tallies = { dwtDct: new Map<string, Tally>(), robust: new Map<string, Tally>() };
  for (const [name] of ATTACKS) {
    tallies.dwtDct.set(name, { bitsRight: 0, bitsTotal: 0, exact: 0, refused: 0 });
    tallies.robust.set(name, { bitsRight: 0, bitsTotal: 0, exact: 0, refused: 0 });
  }
  const psnrs = { dwtDct: [] as number[], robust: [] as number[] };
  const failures: string[] = [];
  const started = Date.now();
  let detectMs = 0,
    detections = 0;

  for (let i = 0; i < imageCount; i++) {
    const { image, kind } = synthesize(1000 + i * 7919, i);
    const payload = { generator: DIFFUSE_GENERATOR_ID, job: jobIdFromString(`eval-job-${i}`) };
    const expected = payloadBits(payload);
    const marked = { dwtDct: embedDwtDct(image, SD1_WATERMARK_BITS), robust: watermark.embed(image, payload) };
    psnrs.dwtDct.push(psnr(image.data, marked.dwtDct.data));
    psnrs.robust.push(psnr(image.data, marked.robust.data));
    for (const [name, attack] of ATTACKS) {
      // Same seed for both marks: the same crop window.
      const attacked = {
        dwtDct: await attack(marked.dwtDct, seeded(i * 31 + 7)),
        robust: await attack(marked.robust, seeded(i * 31 + 7)),
      };
      const d = tallies.dwtDct.get(name)!;
      if (attacked.dwtDct.width * attacked.dwtDct.height < DWT_DCT_MIN_PIXELS) {
        d.refused++;
      } else {
        const bits = decodeDwtDct(attacked.dwtDct, SD1_WATERMARK_BITS.length);
        const right = bits.filter((b, k) => b === SD1_WATERMARK_BITS[k]).length;
        d.bitsRight += right;
        d.bitsTotal += bits.length;
        if (right === bits.length) d.exact++;
      }
      const t = Date.now();
      const found = watermark.detect(attacked.robust);
      detectMs += Date.now() - t;
      detections++;
      const r = tallies.robust.get(name)!;
      r.bitsRight += found.decodedBits.filter((b, k) => b === expected[k]).length;
      r.bitsTotal += expected.length;
      const ok = found.found && found.payload!.generator === payload.generator && found.payload!.job === payload.job;
      if (ok) r.exact++;
      else
        failures.push(
          `image ${i} (${kind}, ${image.width}x${image.height}) ${name}: sync z=${found.syncScore.toFixed(1)}, code agreement ${found.codeAgreement.toFixed(2)}`,
        );
    }
    process.stderr.write(`\rmarked images: ${i + 1}/${imageCount}`);
  }
  process.stderr.write("\n");

  let robustFalse = 0,
    robustPresent = 0,
    dwtFalse = 0,
    maxZ = -Infinity;
  for (let i = 0; i < unmarkedCount; i++) {
    const { image } = synthesize(5_000_000 + i * 104729, i);
    const report = detectWatermark(image, { watermark });
    if (report.robust.found) robustFalse++;
    if (report.robust.present) robustPresent++;
    if (report.dwtDct.some((m) => m.found)) dwtFalse++;
    maxZ = Math.max(maxZ, report.robust.syncScore);
    process.stderr.write(`\runmarked images: ${i + 1}/${unmarkedCount}`);
  }
  process.stderr.write("\n");

  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const cell = (t: Tally) =>
    (t.bitsTotal === 0 ? "n/a" : pct(t.bitsRight / t.bitsTotal)) + (t.refused ? ` (${t.refused} too small)` : "");
  const lines = [
    `Watermarks on ${imageCount} synthetic images (${KINDS.join(", ")}; 512x512 to 1024x1024)`,
    "",
    "| attack | dwtDct bit accuracy | dwtDct exact 136 bits | robust bit accuracy | robust exact payload |",
    "| --- | --- | --- | --- | --- |",
    ...ATTACKS.map(([name]) => {
      const d = tallies.dwtDct.get(name)!,
        r = tallies.robust.get(name)!;
      return `| ${name} | ${cell(d)} | ${d.exact}/${imageCount} (${pct(d.exact / imageCount)}) | ${cell(r)} | ${r.exact}/${imageCount} (${pct(r.exact / imageCount)}) |`;
    }),
    `| PSNR vs unmarked, mean (min) | ${mean(psnrs.dwtDct).toFixed(2)} dB (${Math.min(...psnrs.dwtDct).toFixed(2)}) | | ${mean(psnrs.robust).toFixed(2)} dB (${Math.min(...psnrs.robust).toFixed(2)}) | |`,
    `| false positives on ${unmarkedCount} unmarked | ${dwtFalse}/${unmarkedCount} (p <= 1e-5 per message) | | ${robustFalse}/${unmarkedCount} (payload), ${robustPresent} (sync only) | max sync z ${maxZ.toFixed(2)} (threshold 6.5) |`,
    "",
    `robust detection: ${(detectMs / detections).toFixed(0)} ms per image on average; total run ${((Date.now() - started) / 1000).toFixed(0)} s`,
  ];
  if (failures.length) lines.push("", "robust misses:", ...failures.map((f) => `- ${f}`));
  console.log(lines.join("\n"));
  if (jsonIndex >= 0) {
    const json = {
      imageCount,
      unmarkedCount,
      attacks: ATTACKS.map(([n]) => ({ attack: n, dwtDct: tallies.dwtDct.get(n), robust: tallies.robust.get(n) })),
      psnrs,
      falsePositives: { dwtDct: dwtFalse, robust: robustFalse, robustPresent, maxZ },
      failures,
    };
    writeFileSync(process.argv[jsonIndex + 1]!, JSON.stringify(json, null, 2));
  }
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

await main();
