/**
 * The sizes a model draws best: its native square, and landscape and portrait shapes (3:2 and 2:3) of about the
 * same pixel count, which is what a checkpoint trained on square crops still composes well at. Every side is a
 * multiple of 8, as the VAE needs.
 */
export interface SizePreset {
  width: number;
  height: number;
}

const WIDE = Math.sqrt(3 / 2);

export function sizePresets(native: number): SizePreset[] {
  const long = roundTo8(native * WIDE);
  const short = roundTo8(native / WIDE);
  return [
    { width: native, height: native },
    { width: long, height: short },
    { width: short, height: long },
  ];
}

function roundTo8(v: number): number {
  return Math.max(8, Math.round(v / 8) * 8);
}
