import sharp from "sharp";

/** A 64x64 sketch as a user draws one: dark strokes (a ring at the left and a bar at the right) on white paper. */
export async function sketchPng(): Promise<Buffer> {
  const data = new Uint8Array(64 * 64 * 3).fill(255);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      const r = Math.hypot(x - 24, y - 30);
      if ((r > 11 && r < 15) || (x >= 48 && x <= 51 && y >= 8 && y <= 56))
        data.fill(20, (y * 64 + x) * 3, (y * 64 + x) * 3 + 3);
    }
  }
  return sharp(data, { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toBuffer();
}

/** An image's RGB pixels. */
export async function rgbPixels(image: Buffer): Promise<Buffer> {
  return sharp(image).removeAlpha().raw().toBuffer();
}

/** The largest difference between two images' channel values (same size). */
export function maxChannelDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`the images differ in size (${a.length} and ${b.length} values)`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
