/**
 * Robust watermark, our own design: a keyed spread-spectrum mark in the luminance that survives what erases
 * dwtDct (rescaling, cropping, JPEG, brightness changes), carrying 48 bits that say which generator made the
 * image and for which job.
 *
 * Geometry. Every image is seen through a "canvas": its luminance resampled to 256 x 256, whatever its size
 * or aspect. Resizing an image therefore leaves its canvas unchanged. The mark is a 128 x 128 tile repeated
 * 2 x 2 over the canvas (then stretched back to the image's size and added to R, G and B alike, which moves
 * luminance by exactly the pattern and leaves colour alone). Cropping keeps a fraction f of the width and
 * height: on the new canvas the tile repeats every 128 / f samples, starting anywhere. The detector tries
 * fractions f from 1 down to 0.75 (coarsely, then refining the best few, x and y separately), shrinks the
 * canvas so the period is 128 again and folds it onto one tile (summing all repeats, which adds the mark
 * coherently and the picture incoherently); what is left unknown is a cyclic shift of the tile.
 *
 * Spectrum. The tile is defined by its 2-D DFT on a ring of frequencies, 10 to 32 cycles per tile (periods of
 * 4 to 13 canvas samples): low enough to survive halving and JPEG's quantisation, high enough to stay out of
 * the strong low frequencies of pictures. A keyed shuffle gives a quarter of the ring's coefficients to a
 * synchronisation pattern (unit magnitude, keyed phases, 30 % of the energy) and the rest to the payload:
 * each coefficient's real and imaginary parts (after a keyed phase rotation) are two "slots", each slot
 * carries one coded bit as +/- amplitude, and every coded bit gets about ten slots spread over the ring.
 * A cyclic shift of the tile only multiplies each coefficient by a known phase ramp, so after synchronisation
 * the slots are read directly in the folded spectrum.
 *
 * Detection. The canvas is whitened first (local mean removed, divided by local contrast: busy regions would
 * otherwise drown the faint pattern), and every folded coefficient is reduced to its phase (phase-only
 * correlation), so the sync score does not depend on the picture's spectrum or on contrast and brightness.
 * The correlation with the sync pattern over all cyclic shifts is one inverse FFT; normalised, its value at
 * any one shift is a standard normal variable on an unmarked image, so its peak is a z-score with a known
 * false-positive rate. Payload: 48 bits + CRC-16, rate-1/3 convolutional code (210 coded bits), soft-decision
 * Viterbi on the slots' soft values; a result counts only if the CRC matches and the sync z-score clears
 * SYNC_THRESHOLD.
 *
 * False positives. Per image the search makes at most about a million correlated trials (16384 shifts x 62
 * scales); P(z >= 6.5) per trial is 4e-11, so an unmarked image clears the sync threshold with probability
 * about 4e-5 or less, and then passes the CRC with probability 2^-16 (times the at most 4 alignments
 * decoded): a false detection rate of about 3e-9 per image. Sync alone at z >= 8 (about 6e-10 per image) is
 * reported as "marked, payload unreadable". Measured: the highest sync score on 200 unmarked synthetic images
 * was 6.0.
 *
 * Limits. The mark is additive, so a picture that is busy everywhere at the mark's scale competes with it: fine
 * texture filling the frame (gravel, foliage) with a luminance standard deviation of 12-18 levels still gives the
 * payload after every attack measured at the ordinary strength, at 20-30 levels it mostly does not. A picture that
 * repeats with the tile's period on the canvas (half its width or height: an X/Y/Z grid of similar cells two or
 * four across) adds up in the fold as coherently as the mark, which costs the detector half its gain over the
 * picture. Rotation, mirroring and crops over 25 % are not searched.
 *
 * Strength: the pattern is scaled to an RMS luminance change of 1.95 levels and checked to keep PSNR >= 42 dB.
 * The embedder then reads its own mark at the uncropped alignment; where the picture hides it (no payload, or a
 * sync score or code agreement under what ordinary pictures show, see MARGIN) it strengthens the mark in steps
 * until it reads with that margin, down to PSNR 36 dB at most. Ordinary pictures pass at once and are marked as
 * before; busy or repeating ones trade some PSNR for a payload that survives.
 */
import { createHash } from "node:crypto";
import type { RgbImage } from "../../image/codec.js";
import { InputError, InternalError } from "../../errors.js";
import { codedLength, convolutionalEncode, viterbiDecode } from "./convolutional-code.js";
import { crc16, crcBits } from "./crc16.js";
import { Fft } from "./fft.js";
import { KeyedRandom } from "./keyed-random.js";
import { resizePlane, type Plane } from "./resample.js";
import { whiten } from "./whiten.js";

/** What the mark says: who made the image and which job. */
export interface RobustPayload {
  /** 16 bits: the generator (DIFFUSE_GENERATOR_ID for this program). */
  readonly generator: number;
  /** 32 bits: the job (jobIdFromString of its id). */
  readonly job: number;
}

/** This program's generator id in the robust payload ("df"). */
export const DIFFUSE_GENERATOR_ID = 0x6466;
export const PAYLOAD_BITS = 48;
const MESSAGE_BITS = PAYLOAD_BITS + 16;

/** Key of the published (default) patterns. A deployment can use its own key; detection then needs it too. */
export const DEFAULT_WATERMARK_KEY = "diffuse robust watermark v1";

/** Sync z-score from which a decoded payload (with a matching CRC) is accepted. */
export const SYNC_THRESHOLD = 6.5;
/** Sync z-score from which the mark is reported present even when its payload cannot be read. */
export const PRESENCE_THRESHOLD = 8;

const CANVAS = 256;
const TILE = 128;
const BAND_LOW = 10;
const BAND_HIGH = 32;
const SYNC_FRACTION = 0.25;
const SYNC_ENERGY = 0.3;
const STRENGTH = 1.95;
const MIN_PSNR = 42.1;
/**
 * What a fresh mark must show at its own alignment to be left at STRENGTH (see readsWithMargin): the weakest of 48
 * ordinary synthetic pictures (scripts/eval-watermark.ts: gravel texture, 512-1024 px) show z 11.0-11.2 and
 * agreement 0.90-0.94 and keep their payload through every attack there; busy grids of two cells whose payload was
 * lost showed z 6-9 and agreement 0.72-0.83. Strengthened to z >= 11, 48 such grids (256x154 and 384x244) all read
 * after JPEG 75, 37 after halving (to under 128 px high), 46 after a 10 % crop; to z >= 10, only 27 and 33.
 */
const MARGIN = { syncScore: 11, codeAgreement: 0.88 } as const;
/** Gain steps, and the PSNR floor, of a mark strengthened because the picture hides it. */
const STRENGTHEN_STEP = 1.12;
const STRENGTHENED_MIN_PSNR = 36;
const WHITEN = { meanSigma: 4, contrastSigma: 6, floor: 2 } as const;
/** Smallest kept fraction of width/height searched: crops of up to 25 % per dimension. */
const MIN_KEPT = 0.75;
/**
 * Steps in the kept fraction. A misestimate of e drifts the fold by up to e * 128 samples at its ends, which
 * costs little coherence at e = 0.002, some at 0.004 (the worst case of the coarse sweep, enough to rank
 * candidates) before refinement.
 */
const COARSE_STEP = 0.008;
const FINE_STEP = 0.004;
/** Coarse candidates besides the best are refined only from this sync score (unmarked images rarely reach it). */
const REFINE_FROM = 5.5;
/** Coarse candidates refined and decoded (besides the uncropped alignment tried first) before giving up. */
const DECODE_ATTEMPTS = 3;

export interface RobustDetection {
  /** A payload was decoded, its CRC matched and the sync score cleared SYNC_THRESHOLD. */
  readonly found: boolean;
  /** The sync pattern alone is strong enough (z >= PRESENCE_THRESHOLD) to say the mark is there. */
  readonly present: boolean;
  readonly payload?: RobustPayload;
  /** The 48 payload bits as decoded at the best alignment: unverified unless `found` (for measurements). */
  readonly decodedBits: readonly number[];
  /** Peak of the sync correlation, a z-score (standard normal per trial on unmarked images). */
  readonly syncScore: number;
  /** Estimated probability that an unmarked image scores like this (the smaller, the surer). */
  readonly falsePositiveProbability: number;
  /** Fraction of the original width and height the image shows, as the detector estimated it. */
  readonly kept: { readonly x: number; readonly y: number };
  /** Agreement of the soft values with the decoded code word, -1..1 (1: every slot agrees). */
  readonly codeAgreement: number;
}

interface Coefficient {
  readonly kx: number;
  readonly ky: number;
  /** Keyed phase rotation. */
  readonly cos: number;
  readonly sin: number;
}

interface PayloadSlot {
  readonly coefficient: number;
  /** 0: real part, 1: imaginary part (after the keyed rotation). */
  readonly part: 0 | 1;
  readonly codedBit: number;
}

interface Spectrum {
  readonly re: Float64Array;
  readonly im: Float64Array;
}

interface Candidate {
  readonly fx: number;
  readonly fy: number;
  readonly z: number;
  readonly shift: readonly [number, number];
  readonly spectrum: Spectrum;
}

/** The patterns of one key; immutable after construction, safe to share. */
export class RobustWatermark {
  private readonly sync: Coefficient[];
  private readonly payload: Coefficient[];
  private readonly slots: PayloadSlot[];
  private readonly fft = new Fft(TILE);
  private readonly codedBits = codedLength(MESSAGE_BITS);

  constructor(key: string = DEFAULT_WATERMARK_KEY) {
    const rng = new KeyedRandom(key, "ring");
    const ring: Coefficient[] = [];
    // One coefficient of each conjugate pair: ky > 0, or ky = 0 and kx > 0.
    for (let ky = 0; ky <= BAND_HIGH; ky++) {
      for (let kx = -BAND_HIGH; kx <= BAND_HIGH; kx++) {
        if (ky === 0 && kx <= 0) continue;
        const r = Math.hypot(kx, ky);
        if (r >= BAND_LOW && r <= BAND_HIGH) ring.push({ kx, ky, cos: 1, sin: 0 });
      }
    }
    rng.shuffle(ring);
    const rotated = ring.map(({ kx, ky }) => {
      const phi = 2 * Math.PI * rng.uniform();
      return { kx, ky, cos: Math.cos(phi), sin: Math.sin(phi) };
    });
    const nSync = Math.round(rotated.length * SYNC_FRACTION);
    this.sync = rotated.slice(0, nSync);
    this.payload = rotated.slice(nSync);
    const order: { coefficient: number; part: 0 | 1 }[] = [];
    for (let c = 0; c < this.payload.length; c++) order.push({ coefficient: c, part: 0 }, { coefficient: c, part: 1 });
    rng.shuffle(order);
    const usable = order.length - (order.length % this.codedBits);
    if (usable < this.codedBits)
      throw new InternalError(
        `robust watermark ring too small: ${order.length} slots for ${this.codedBits} coded bits`,
      );
    this.slots = order.slice(0, usable).map((s, i) => ({ ...s, codedBit: i % this.codedBits }));
  }

  /** Returns a marked copy of `image`. */
  embed(image: RgbImage, payload: RobustPayload): RgbImage {
    checkPayload(payload);
    if (Math.min(image.width, image.height) < TILE) {
      throw new InputError(
        `the robust watermark needs images of at least ${TILE}x${TILE} pixels; this one is ${image.width}x${image.height}`,
      );
    }
    const tile = this.patternTile(convolutionalEncode(messageBits(payload)));
    const canvas = new Float64Array(CANVAS * CANVAS);
    for (let y = 0; y < CANVAS; y++)
      for (let x = 0; x < CANVAS; x++) canvas[y * CANVAS + x] = tile[(y % TILE) * TILE + (x % TILE)]!;
    const pattern = resizePlane({ width: CANVAS, height: CANVAS, data: canvas }, image.width, image.height).data;
    let ms = 0;
    for (const v of pattern) ms += v * v;
    let gain = STRENGTH / Math.sqrt(ms / pattern.length);
    // Rounding adds its own error; back off in the rare case it takes PSNR under the floor.
    let marked = addToAllChannels(image, pattern, gain);
    while (psnr(image.data, marked.data) < MIN_PSNR) {
      gain *= 0.97;
      marked = addToAllChannels(image, pattern, gain);
    }
    if (this.readsWithMargin(marked, payload)) return marked;
    // The picture hides the mark where the detector looks: busy at the mark's scale, or repeating with the tile's
    // period (a grid of similar cells, two or four across, adds coherently in the fold just as the mark does).
    // Strengthen it, within a lower PSNR floor, until its own detector reads it with the margin attacks need.
    for (;;) {
      const stronger = addToAllChannels(image, pattern, gain * STRENGTHEN_STEP);
      if (psnr(image.data, stronger.data) < STRENGTHENED_MIN_PSNR) return marked;
      gain *= STRENGTHEN_STEP;
      marked = stronger;
      if (this.readsWithMargin(marked, payload)) return marked;
    }
  }

  /**
   * Whether a freshly marked image gives back its payload at the uncropped alignment with a margin: the sync
   * score and the soft values' agreement with the code word that unattacked ordinary pictures show, so that the
   * losses of JPEG, resizing and cropping still leave it readable.
   */
  private readsWithMargin(marked: RgbImage, payload: RobustPayload): boolean {
    const spectrum = this.foldSpectrum(this.view(marked), 1, 1);
    const r = this.decode({ fx: 1, fy: 1, spectrum, ...this.syncPeak(spectrum) });
    return (
      r.found &&
      r.payload!.generator === payload.generator &&
      r.payload!.job === payload.job &&
      r.syncScore >= MARGIN.syncScore &&
      r.codeAgreement >= MARGIN.codeAgreement
    );
  }

  /** The detector's view of an image: its luminance on the canvas, whitened. */
  private view(image: RgbImage): Plane {
    return whiten(resizePlane(luminance(image), CANVAS, CANVAS), WHITEN);
  }

  detect(image: RgbImage): RobustDetection {
    const view = this.view(image);
    const consider = (fx: number, fy: number): Candidate => {
      const spectrum = this.foldSpectrum(view, fx, fy);
      return { fx, fy, spectrum, ...this.syncPeak(spectrum) };
    };
    // Uncropped images (the common case) are settled by the first candidate.
    const first = consider(1, 1);
    if (first.z >= SYNC_THRESHOLD) {
      const result = this.decode(first);
      if (result.found) return result;
    }
    // Coarse sweep over the kept fraction, then refinement of the most promising alignments only.
    const coarse: Candidate[] = [first];
    for (let f = 1 - COARSE_STEP; f >= MIN_KEPT - 1e-9; f -= COARSE_STEP) keepTop(coarse, consider(f, f));
    let fallback: RobustDetection = this.decode(coarse[0]!);
    for (const start of coarse) {
      if (start.z < REFINE_FROM && start !== coarse[0]) continue;
      const refined = this.refine(start, consider);
      const result = this.decode(refined);
      if (result.found) return result;
      if (refined.z > fallback.syncScore) fallback = result;
    }
    return fallback;
  }

  /**
   * Hill-climbs from a coarse candidate: the common fraction half a coarse step either way, then x and y
   * separately (crops need not keep the aspect ratio) in quarter steps.
   */
  private refine(start: Candidate, consider: (fx: number, fy: number) => Candidate): Candidate {
    let best = start;
    for (const d of [-FINE_STEP, FINE_STEP]) {
      const f = start.fx + d;
      if (f > 1 + 1e-9) continue;
      const c = consider(f, f);
      if (c.z > best.z) best = c;
    }
    const centre = best;
    for (const dx of [-1, 0, 1]) {
      for (const dy of [-1, 0, 1]) {
        const fx = centre.fx + (dx * FINE_STEP) / 2,
          fy = centre.fy + (dy * FINE_STEP) / 2;
        if ((dx === 0 && dy === 0) || fx > 1 + 1e-9 || fy > 1 + 1e-9) continue;
        const c = consider(fx, fy);
        if (c.z > best.z) best = c;
      }
    }
    return best;
  }

  private decode(c: Candidate): RobustDetection {
    const soft = this.readSoft(c.spectrum, c.shift);
    const bits = viterbiDecode(soft, MESSAGE_BITS);
    const body = bits.slice(0, PAYLOAD_BITS);
    const crcValid = crc16(body) === bitsToNumber(bits.slice(PAYLOAD_BITS));
    const recoded = convolutionalEncode(bits);
    let agree = 0,
      total = 0;
    for (let i = 0; i < soft.length; i++) {
      total += Math.abs(soft[i]!);
      agree += (recoded[i] ? 1 : -1) * soft[i]!;
    }
    const found = crcValid && c.z >= SYNC_THRESHOLD;
    const syncFp = Math.min(1, SEARCH_TRIALS * normalTail(c.z));
    return {
      found,
      present: found || c.z >= PRESENCE_THRESHOLD,
      ...(found ? { payload: { generator: bitsToNumber(body.slice(0, 16)), job: bitsToNumber(body.slice(16)) } } : {}),
      decodedBits: body,
      syncScore: c.z,
      falsePositiveProbability: found ? syncFp * (DECODE_ATTEMPTS + 1) * 2 ** -16 : syncFp,
      kept: { x: c.fx, y: c.fy },
      codeAgreement: total > 0 ? agree / total : 0,
    };
  }

  /** The unit-RMS tile whose spectrum carries the sync pattern and the coded bits. */
  private patternTile(coded: readonly number[]): Float64Array {
    const re = new Float64Array(TILE * TILE),
      im = new Float64Array(TILE * TILE);
    const syncAmp = Math.sqrt(SYNC_ENERGY / this.sync.length);
    const slotAmp = Math.sqrt((1 - SYNC_ENERGY) / this.slots.length);
    // A coefficient and its mirror image, conjugated, so the tile is real.
    const put = (kx: number, ky: number, r: number, i: number) => {
      const a = index(kx, ky),
        b = index(-kx, -ky);
      re[a] += r;
      im[a] += i;
      re[b] += r;
      im[b] -= i;
    };
    for (const s of this.sync) put(s.kx, s.ky, syncAmp * s.cos, syncAmp * s.sin);
    for (const slot of this.slots) {
      const c = this.payload[slot.coefficient]!;
      const v = (coded[slot.codedBit] ? 1 : -1) * slotAmp;
      const r = slot.part === 0 ? v : 0,
        i = slot.part === 0 ? 0 : v;
      put(c.kx, c.ky, r * c.cos - i * c.sin, r * c.sin + i * c.cos);
    }
    this.fft.transform2d(re, im, true);
    let ms = 0;
    for (const v of re) ms += v * v;
    const norm = Math.sqrt(ms / re.length);
    for (let i = 0; i < re.length; i++) re[i]! /= norm;
    return re;
  }

  /** Shrinks the view by (fx, fy) so a tile spans TILE samples, folds it onto one tile and transforms it. */
  private foldSpectrum(view: Plane, fx: number, fy: number): Spectrum {
    const w = Math.max(TILE, Math.round(CANVAS * fx)),
      h = Math.max(TILE, Math.round(CANVAS * fy));
    const z = resizePlane(view, w, h);
    const re = new Float64Array(TILE * TILE),
      im = new Float64Array(TILE * TILE);
    for (let y = 0; y < h; y++) {
      const row = (y % TILE) * TILE;
      for (let x = 0; x < w; x++) re[row + (x % TILE)] += z.data[y * w + x]!;
    }
    this.fft.transform2d(re, im);
    return { re, im };
  }

  /**
   * Phase-only correlation with the sync pattern at every cyclic shift (one inverse FFT), normalised so each
   * value is standard normal when no mark is there.
   */
  private syncPeak(spectrum: Spectrum): { z: number; shift: [number, number] } {
    const re = new Float64Array(TILE * TILE),
      im = new Float64Array(TILE * TILE);
    for (const s of this.sync) {
      const a = index(s.kx, s.ky),
        b = index(-s.kx, -s.ky);
      const yr = spectrum.re[a]!,
        yi = spectrum.im[a]!;
      const m = Math.hypot(yr, yi) || 1;
      // conj(sync) * Y / |Y|, and its mirror.
      const xr = (s.cos * yr + s.sin * yi) / m,
        xi = (s.cos * yi - s.sin * yr) / m;
      re[a] = xr;
      im[a] = xi;
      re[b] = xr;
      im[b] = -xi;
    }
    this.fft.transform2d(re, im, true);
    let best = -Infinity,
      at = 0;
    for (let i = 0; i < re.length; i++) {
      if (re[i]! > best) {
        best = re[i]!;
        at = i;
      }
    }
    // Each sync coefficient contributes twice the real part of a unit phasor of random phase (variance 2)
    // when no mark is there.
    return { z: best / Math.sqrt(2 * this.sync.length), shift: [at % TILE, Math.floor(at / TILE)] };
  }

  /** Soft value per coded bit: its slots' phase-only values, shift and keyed rotation undone, summed. */
  private readSoft(spectrum: Spectrum, shift: readonly [number, number]): Float64Array {
    const soft = new Float64Array(this.codedBits);
    const parts = this.payload.map((c) => {
      const a = index(c.kx, c.ky);
      const yr = spectrum.re[a]!,
        yi = spectrum.im[a]!;
      const m = Math.hypot(yr, yi) || 1;
      const t = (2 * Math.PI * (c.kx * shift[0] + c.ky * shift[1])) / TILE;
      const ar = (yr * Math.cos(t) - yi * Math.sin(t)) / m,
        ai = (yr * Math.sin(t) + yi * Math.cos(t)) / m;
      return [ar * c.cos + ai * c.sin, ai * c.cos - ar * c.sin] as const;
    });
    for (const slot of this.slots) soft[slot.codedBit] += parts[slot.coefficient]![slot.part];
    return soft;
  }
}

/** Trials behind one search (shifts x scales), for the false-positive estimate; correlated, so an upper bound. */
const SEARCH_TRIALS = TILE * TILE * (Math.floor((1 - MIN_KEPT) / COARSE_STEP) + 1 + 10 * DECODE_ATTEMPTS);

/** A job id (any string, e.g. a UUID) as the 32-bit number the payload carries: the first 4 bytes of its SHA-256. */
export function jobIdFromString(id: string): number {
  return createHash("sha256").update(id).digest().readUInt32BE(0);
}

/** BT.601 luma; adding the same amount to R, G and B moves it by exactly that amount. */
export function luminance(image: RgbImage): Plane {
  const n = image.width * image.height;
  const data = new Float64Array(n);
  for (let p = 0; p < n; p++)
    data[p] = 0.299 * image.data[p * 3]! + 0.587 * image.data[p * 3 + 1]! + 0.114 * image.data[p * 3 + 2]!;
  return { width: image.width, height: image.height, data };
}

/** PSNR in dB between two 8-bit images of the same size (Infinity when identical). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    se += d * d;
  }
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255 * a.length) / se);
}

function addToAllChannels(image: RgbImage, pattern: Float64Array, gain: number): RgbImage {
  const out = new Uint8Array(image.data.length);
  for (let p = 0; p < pattern.length; p++) {
    const d = pattern[p]! * gain;
    for (let c = 0; c < 3; c++) {
      const v = Math.round(image.data[p * 3 + c]! + d);
      out[p * 3 + c] = v < 0 ? 0 : Math.min(v, 255);
    }
  }
  return { width: image.width, height: image.height, data: out };
}

/** Keeps the DECODE_ATTEMPTS best candidates, one per distinct alignment. */
function keepTop(top: Candidate[], c: Candidate): void {
  const same = top.findIndex(
    (t) =>
      t.shift[0] === c.shift[0] &&
      t.shift[1] === c.shift[1] &&
      Math.abs(t.fx - c.fx) < 0.02 &&
      Math.abs(t.fy - c.fy) < 0.02,
  );
  if (same >= 0) {
    if (top[same]!.z >= c.z) return;
    top.splice(same, 1);
  }
  top.push(c);
  top.sort((a, b) => b.z - a.z);
  if (top.length > DECODE_ATTEMPTS) top.length = DECODE_ATTEMPTS;
}

function index(kx: number, ky: number): number {
  return (((ky % TILE) + TILE) % TILE) * TILE + (((kx % TILE) + TILE) % TILE);
}

/** P(Z >= z) for a standard normal Z, through a Chebyshev fit of erfc (relative error < 1.2e-7). */
export function normalTail(z: number): number {
  if (z < 0) return 1 - normalTail(-z);
  const x = z / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const y =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return y / 2;
}

function checkPayload(p: RobustPayload): void {
  if (!Number.isInteger(p.generator) || p.generator < 0 || p.generator > 0xffff)
    throw new InputError(`watermark generator id ${p.generator} must be a whole number in 0..65535`);
  if (!Number.isInteger(p.job) || p.job < 0 || p.job > 0xffffffff)
    throw new InputError(`watermark job id ${p.job} must be a whole number in 0..4294967295`);
}

function messageBits(p: RobustPayload): number[] {
  const body = [...numberToBits(p.generator, 16), ...numberToBits(p.job, 32)];
  return [...body, ...crcBits(crc16(body))];
}

function numberToBits(v: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(v / 2 ** (n - 1 - i)) % 2);
}

function bitsToNumber(bits: readonly number[]): number {
  return bits.reduce((acc, b) => acc * 2 + b, 0);
}
