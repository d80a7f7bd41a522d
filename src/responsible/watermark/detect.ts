/**
 * One call that looks for every watermark we know: our robust mark (with its payload), and the dwtDct marks
 * of Stable Diffusion 1 ("StableDiffusionV1") and SDXL (its 48-bit pattern). For `diffuse detect IMAGE`.
 *
 * dwtDct has no synchronisation and no error detection, and its own decoder misreads a third of the bits of a
 * freshly marked image in the worst fixture, so "found" there is a statistical statement: how unlikely is it
 * that the decoded bits agree this well with the message by chance? The decoder is biased (smooth images read
 * as runs of ones or of zeros), so the chance model keeps the number of ones the decoder produced and shuffles
 * their positions: the agreement is then hypergeometric, and its upper tail is the p-value. A message counts
 * as found at p <= DWT_DCT_P_THRESHOLD.
 */
import type { RgbImage } from "../../image/codec.js";
import { decodeDwtDct, DWT_DCT_MIN_PIXELS, SD1_WATERMARK_BITS, SDXL_WATERMARK_BITS } from "./dwt-dct.js";
import { DIFFUSE_GENERATOR_ID, RobustWatermark, type RobustDetection } from "./robust.js";

/** p-value under which a dwtDct message is reported found (per message; two messages are tested). */
export const DWT_DCT_P_THRESHOLD = 1e-5;

export type DwtDctMessage = "sd1" | "sdxl";

export interface DwtDctMatch {
  readonly message: DwtDctMessage;
  /** False when the image is under 256x256 pixels, which the reference decoder refuses. */
  readonly checked: boolean;
  /** Fraction of the message's bits the reference decoder reads back. */
  readonly bitAgreement: number;
  /** Probability of agreeing at least this well by chance (see above). */
  readonly pValue: number;
  readonly found: boolean;
}

export type WatermarkVerdict = "robust" | "robust-unreadable" | "dwtDct-sd1" | "dwtDct-sdxl" | "none";

export interface WatermarkReport {
  readonly verdict: WatermarkVerdict;
  /** 1 minus the probability that an unmarked image would give this verdict's evidence; 0 for "none". */
  readonly confidence: number;
  /** One line for people. */
  readonly summary: string;
  readonly robust: RobustDetection;
  readonly dwtDct: readonly DwtDctMatch[];
}

export interface DetectOptions {
  /** Patterns to look for (a RobustWatermark built with the deployment's key); the default key otherwise. */
  readonly watermark?: RobustWatermark;
}

const MESSAGES: readonly [DwtDctMessage, readonly number[]][] = [
  ["sd1", SD1_WATERMARK_BITS],
  ["sdxl", SDXL_WATERMARK_BITS],
];

export function detectWatermark(image: RgbImage, options: DetectOptions = {}): WatermarkReport {
  const robust = (options.watermark ?? new RobustWatermark()).detect(image);
  const dwtDct = MESSAGES.map(([message, bits]) => matchDwtDct(image, message, bits));
  const bestDwt = dwtDct.filter((m) => m.found).sort((a, b) => a.pValue - b.pValue)[0];
  if (robust.found) {
    const p = robust.payload!;
    const who =
      p.generator === DIFFUSE_GENERATOR_ID ? "diffuse" : `generator 0x${p.generator.toString(16).padStart(4, "0")}`;
    return report(
      "robust",
      1 - robust.falsePositiveProbability,
      `robust watermark: ${who}, job 0x${p.job.toString(16).padStart(8, "0")} (sync z=${robust.syncScore.toFixed(1)}, crop ~${Math.round((1 - robust.kept.x) * 100)}%)`,
      robust,
      dwtDct,
    );
  }
  if (bestDwt) {
    const name = bestDwt.message === "sd1" ? 'Stable Diffusion 1 ("StableDiffusionV1")' : "SDXL";
    return report(
      `dwtDct-${bestDwt.message}`,
      1 - bestDwt.pValue,
      `dwtDct watermark of ${name}: ${(bestDwt.bitAgreement * 100).toFixed(0)}% of bits agree (p=${bestDwt.pValue.toExponential(1)})`,
      robust,
      dwtDct,
    );
  }
  if (robust.present) {
    return report(
      "robust-unreadable",
      1 - robust.falsePositiveProbability,
      `robust watermark present (sync z=${robust.syncScore.toFixed(1)}) but its payload could not be read`,
      robust,
      dwtDct,
    );
  }
  return report("none", 0, "no watermark found", robust, dwtDct);
}

function report(
  verdict: WatermarkVerdict,
  confidence: number,
  summary: string,
  robust: RobustDetection,
  dwtDct: readonly DwtDctMatch[],
): WatermarkReport {
  return { verdict, confidence: Math.max(0, Math.min(1, confidence)), summary, robust, dwtDct };
}

function matchDwtDct(image: RgbImage, message: DwtDctMessage, bits: readonly number[]): DwtDctMatch {
  if (image.width * image.height < DWT_DCT_MIN_PIXELS)
    return { message, checked: false, bitAgreement: 0, pValue: 1, found: false };
  const decoded = decodeDwtDct(image, bits.length);
  const n = bits.length;
  let agree = 0,
    decodedOnes = 0,
    messageOnes = 0,
    bothOnes = 0;
  for (let i = 0; i < n; i++) {
    if (decoded[i] === bits[i]) agree++;
    decodedOnes += decoded[i]!;
    messageOnes += bits[i]!;
    if (decoded[i] && bits[i]) bothOnes++;
  }
  const pValue = hypergeometricUpperTail(n, messageOnes, decodedOnes, bothOnes);
  return { message, checked: true, bitAgreement: agree / n, pValue, found: pValue <= DWT_DCT_P_THRESHOLD };
}

/**
 * P(X >= x) for X ~ Hypergeometric(population n, successes k, draws m): the chance that m ones placed at
 * random among n positions cover at least x of the message's k ones. With the counts of ones fixed, the
 * agreement (2X + n - m - k) grows with X alone, so this is the agreement's tail too.
 */
export function hypergeometricUpperTail(n: number, k: number, m: number, x: number): number {
  const logChoose = (a: number, b: number) => logFactorial(a) - logFactorial(b) - logFactorial(a - b);
  const denominator = logChoose(n, m);
  let p = 0;
  for (let i = x; i <= Math.min(k, m); i++) {
    if (m - i > n - k || m - i < 0) continue;
    p += Math.exp(logChoose(k, i) + logChoose(n - k, m - i) - denominator);
  }
  return Math.min(1, p);
}

function logFactorial(n: number): number {
  let s = 0;
  for (let i = 2; i <= n; i++) s += Math.log(i);
  return s;
}
