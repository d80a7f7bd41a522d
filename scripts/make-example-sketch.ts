/**
 * Draws the README's example inputs at the embedded model's native 64 px: examples/sketch.png, the image-to-image
 * example's rough red square on a blue background as someone would daub it on the page's canvas, and
 * examples/scribble.png, the ControlNet example's outline of a star in dark ink on white paper, on the left.
 * Run: npx tsx scripts/make-example-sketch.ts
 */
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "../examples");

// Slightly uneven edges, as a brush leaves them; the colours are the shapes world's red and blue.
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">
  <rect width="64" height="64" fill="#2f5fd0"/>
  <path d="M21 20 L43 19 L44 42 L20 43 Z" fill="#d83a2e" stroke="#b8291f" stroke-width="2" stroke-linejoin="round"/>
</svg>`;

// A five-pointed star about the shapes world's "left" anchor (17, 32), radius 12, one stroke of the page's pen.
const star = Array.from({ length: 10 }, (_, i) => {
  const r = i % 2 === 0 ? 12 : 5;
  const a = -Math.PI / 2 + (i * Math.PI) / 5;
  return `${(17 + r * Math.cos(a)).toFixed(1)},${(32 + r * Math.sin(a)).toFixed(1)}`;
}).join(" ");
const scribble = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">
  <rect width="64" height="64" fill="#ffffff"/>
  <polygon points="${star}" fill="none" stroke="#1f2937" stroke-width="2" stroke-linejoin="round"/>
</svg>`;

mkdirSync(DIR, { recursive: true });
for (const [name, image] of [
  ["sketch.png", svg],
  ["scribble.png", scribble],
] as const) {
  await sharp(Buffer.from(image)).png({ compressionLevel: 9 }).toFile(join(DIR, name));
  console.log(`wrote ${join(DIR, name)}`);
}
