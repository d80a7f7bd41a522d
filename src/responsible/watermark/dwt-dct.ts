/**
 * The invisible watermark Stable Diffusion shipped: the `invisible-watermark` package's `dwtDct` method
 * (class EmbedMaxDct), reproduced so that our embedder writes the same pixels and our decoder reads the same
 * bits as the reference, errors included.
 *
 * What the reference does, and the quirks a compatible implementation has to keep:
 * - Colour: OpenCV's BGR->YUV (see yuv.ts); only the U plane carries the mark (scales [0, 36, 36] and a loop
 *   over channels 0 and 1: Y has scale 0, V is never visited).
 * - Region: the top-left floor(h/4)*4 x floor(w/4)*4 pixels.
 * - One-level Haar DWT of that region (haar.ts); the LL band is cut into 4x4 blocks scanned row by row, and
 *   block number n carries bit n mod L, so the message repeats over the image.
 * - Despite the name, no DCT is taken: the block's largest-magnitude coefficient other than its top-left one
 *   (first one on ties, in row-major order) is quantised in the LL band itself: |c| becomes
 *   (floor(|c| / 36) + 0.25 + 0.5 bit) * 36, keeping the sign. Decoding reads bit = (|c| mod 36) > 18 on
 *   whichever coefficient is now the largest, which is why the reference misreads some of its own bits.
 * - The inverse DWT is handed the detail bands as (cV, cH, cD) instead of (cH, cV, cD): horizontal and
 *   vertical details trade places, which transposes every 2x2 pixel square of the U plane. This is most of the
 *   visible damage (single pixels move by up to ~70 levels).
 * - uint8 images: the float inverse is written back into the uint8 YUV array by a C cast (truncation toward
 *   zero, not rounding), then OpenCV converts back to BGR with saturation to 0..255. float32 images (SDXL):
 *   everything stays float32 (PyWavelets keeps the dtype), nothing is rounded or clipped.
 * - Decoding: per bit, the fraction of its blocks that read 1, and bit = fraction * 255 > 127.
 * - Images under 256*256 pixels are refused, as the reference does.
 */
import type { RgbImage } from "../../image/codec.js";
import { InputError, InternalError } from "../../errors.js";
import { haarForward, haarInverse, type HaarBands, type Precision } from "./haar.js";
import { bgrToYuv8, bgrToYuvFloat, yuvToBgr8, yuvToBgrFloat } from "./yuv.js";

/** The quantisation step the reference applies to the U channel. */
export const DWT_DCT_STEP = 36;
/** Side of the square blocks of the LL band. */
export const DWT_DCT_BLOCK = 4;
/** The reference refuses images with fewer pixels than this. */
export const DWT_DCT_MIN_PIXELS = 256 * 256;

/** The message Stable Diffusion 1.x embeds: the UTF-8 bytes of "StableDiffusionV1", most significant bit first. */
export const SD1_WATERMARK_BITS: readonly number[] = Object.freeze(
  bitsFromBytes(new TextEncoder().encode("StableDiffusionV1")),
);

/** The fixed 48-bit message of SDXL (generative-models' WATERMARK_MESSAGE). */
export const SDXL_WATERMARK_BITS: readonly number[] = Object.freeze(
  [..."101100111110110010010000011110111011000110011110"].map(Number),
);

/**
 * Float RGB pixels on the 0..255 scale, HWC: what SDXL handed the watermark (its decoded images times 255),
 * unrounded and unclipped.
 */
export interface FloatRgbImage {
  readonly width: number;
  readonly height: number;
  /** width * height * 3 values. */
  readonly data: Float32Array;
}

/** numpy.unpackbits: each byte to 8 bits, most significant first. */
export function bitsFromBytes(bytes: Uint8Array): number[] {
  const bits: number[] = [];
  for (const b of bytes) for (let k = 7; k >= 0; k--) bits.push((b >> k) & 1);
  return bits;
}

/**
 * Embeds `bits` the way Stable Diffusion 1 did (`put_watermark` in the CompVis scripts): RGB to BGR,
 * `WatermarkEncoder.encode(bgr, 'dwtDct')` on uint8, back to RGB.
 */
export function embedDwtDct(image: RgbImage, bits: readonly number[]): RgbImage {
  checkImage(image.width, image.height, image.data.length);
  checkBits(bits);
  const yuv = bgrToYuv8(swapRedBlue(image.data, new Uint8Array(image.data.length)));
  embedInU(yuv, image.width, image.height, bits, "float64", (v) => cCastToByte(v));
  return {
    width: image.width,
    height: image.height,
    data: swapRedBlue(yuvToBgr8(yuv), new Uint8Array(image.data.length)),
  };
}

/**
 * Embeds `bits` the way SDXL did (generative-models' WatermarkEmbedder): float32 pixels on 0..255, through
 * OpenCV's float colour conversion and a float32 DWT, returned unrounded. SDXL then divided by 255 and clamped
 * to 0..1; that is the caller's business.
 */
export function embedDwtDctFloat(image: FloatRgbImage, bits: readonly number[]): FloatRgbImage {
  checkImage(image.width, image.height, image.data.length);
  checkBits(bits);
  const yuv = bgrToYuvFloat(swapRedBlue(image.data, new Float32Array(image.data.length)), image.width);
  embedInU(yuv, image.width, image.height, bits, "float32", Math.fround);
  return {
    width: image.width,
    height: image.height,
    data: swapRedBlue(yuvToBgrFloat(yuv), new Float32Array(image.data.length)),
  };
}

/** `WatermarkDecoder('bits', length).decode(bgr, 'dwtDct')` on a uint8 image: the bits (0/1) as the reference reads them. */
export function decodeDwtDct(image: RgbImage, length: number): number[] {
  checkImage(image.width, image.height, image.data.length);
  const yuv = bgrToYuv8(swapRedBlue(image.data, new Uint8Array(image.data.length)));
  return decodeFromU(yuv, image.width, image.height, length, "float64");
}

/** The reference decoder on a float32 image (as SDXL's own check read its outputs). */
export function decodeDwtDctFloat(image: FloatRgbImage, length: number): number[] {
  checkImage(image.width, image.height, image.data.length);
  const yuv = bgrToYuvFloat(swapRedBlue(image.data, new Float32Array(image.data.length)), image.width);
  return decodeFromU(yuv, image.width, image.height, length, "float32");
}

type Pixels = Uint8Array | Float32Array;

function embedInU(
  yuv: Pixels,
  width: number,
  height: number,
  bits: readonly number[],
  precision: Precision,
  store: (v: number) => number,
): void {
  const w4 = Math.floor(width / 4) * 4,
    h4 = Math.floor(height / 4) * 4;
  const bands = haarForward((x, y) => yuv[(y * width + x) * 3 + 1]!, w4, h4, precision);
  let n = 0;
  forEachBlock(bands, (block) => {
    const bit = bits[n++ % bits.length]!;
    const k = block.largest();
    const value = block.get(k);
    // Same magnitude rule for both signs; the reference writes the negative branch as -1.0 * (...) * scale.
    const magnitude = (floorDiv(Math.abs(value), DWT_DCT_STEP) + 0.25 + 0.5 * bit) * DWT_DCT_STEP;
    block.set(k, value >= 0 ? magnitude : -magnitude);
  });
  const plane = haarInverse({ ...bands, horizontal: bands.vertical, vertical: bands.horizontal }, precision);
  for (let y = 0; y < h4; y++) {
    for (let x = 0; x < w4; x++) yuv[(y * width + x) * 3 + 1] = store(plane[y * w4 + x]!);
  }
}

function decodeFromU(yuv: Pixels, width: number, height: number, length: number, precision: Precision): number[] {
  if (!Number.isInteger(length) || length < 1)
    throw new InternalError(`dwtDct decoding needs a positive whole number of bits, got ${length}`);
  const w4 = Math.floor(width / 4) * 4,
    h4 = Math.floor(height / 4) * 4;
  const bands = haarForward((x, y) => yuv[(y * width + x) * 3 + 1]!, w4, h4, precision);
  const ones = new Array<number>(length).fill(0);
  const votes = new Array<number>(length).fill(0);
  let n = 0;
  forEachBlock(bands, (block) => {
    const i = n++ % length;
    votes[i]!++;
    if (Math.abs(block.get(block.largest())) % DWT_DCT_STEP > 0.5 * DWT_DCT_STEP) ones[i]!++;
  });
  // numpy: mean of the 0/1 scores, then `* 255 > 127`; a bit with no block averages to NaN and reads 0.
  return ones.map((o, i) => (votes[i]! > 0 && (o / votes[i]!) * 255 > 127 ? 1 : 0));
}

interface Block {
  /** Row-major index 1..15 of the largest |coefficient| other than the block's first; the first on ties. */
  largest(): number;
  get(k: number): number;
  set(k: number, v: number): void;
}

/** Visits the whole 4x4 blocks of the LL band, row by row, as the reference's encode_frame/decode_frame. */
function forEachBlock(bands: HaarBands, visit: (block: Block) => void): void {
  const { approx: ll, width } = bands;
  const rows = Math.floor(bands.height / DWT_DCT_BLOCK),
    cols = Math.floor(width / DWT_DCT_BLOCK);
  let origin = 0;
  const at = (k: number): number => origin + (k >> 2) * width + (k & 3);
  const block: Block = {
    largest() {
      let best = 1,
        max = Math.abs(ll[at(1)]!);
      for (let k = 2; k < 16; k++) {
        const v = Math.abs(ll[at(k)]!);
        if (v > max) {
          max = v;
          best = k;
        }
      }
      return best;
    },
    get: (k) => ll[at(k)]!,
    set: (k, v) => {
      ll[at(k)] = v;
    },
  };
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      origin = i * DWT_DCT_BLOCK * width + j * DWT_DCT_BLOCK;
      visit(block);
    }
  }
}

/** numpy's floor division of floats (npy_divmod), which corrects the quotient where a/b alone would round up. */
function floorDiv(a: number, b: number): number {
  const mod = a % b;
  const div = (a - mod) / b;
  let floor = Math.floor(div);
  if (div - floor > 0.5) floor += 1;
  return floor;
}

/**
 * numpy's float64 -> uint8 assignment: a C cast, which truncates toward zero (so 99.9999999 from the float
 * inverse becomes 99). Out of range, numpy on x86-64 keeps the low byte of the integer part (-1.5 -> 255,
 * 256.2 -> 0; checked with numpy 2.4), though 8-bit input never gets there: U lies within 17..239 and a block
 * moves by at most 13.5.
 */
function cCastToByte(v: number): number {
  return Math.trunc(v) & 0xff;
}

function swapRedBlue<T extends Pixels>(src: Pixels, dst: T): T {
  for (let i = 0; i < src.length; i += 3) {
    dst[i] = src[i + 2]!;
    dst[i + 1] = src[i + 1]!;
    dst[i + 2] = src[i]!;
  }
  return dst;
}

function checkImage(width: number, height: number, length: number): void {
  if (
    !Number.isInteger(width) ||
    !Number.isInteger(height) ||
    width < 1 ||
    height < 1 ||
    length !== width * height * 3
  ) {
    throw new InternalError(`image of ${width}x${height} has ${length} values, expected ${width * height * 3}`);
  }
  if (width * height < DWT_DCT_MIN_PIXELS) {
    throw new InputError(
      `the dwtDct watermark needs at least 256x256 pixels (as the reference); this image is ${width}x${height}`,
    );
  }
}

function checkBits(bits: readonly number[]): void {
  if (bits.length === 0 || bits.some((b) => b !== 0 && b !== 1)) {
    throw new InternalError("a dwtDct message is a non-empty list of 0/1 bits");
  }
}
