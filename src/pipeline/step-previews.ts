import { encodePng, type RgbImage } from "../image/codec.js";
import { latentPreview } from "../image/preview.js";
import type { Nchw } from "../image/tensor.js";
import type { PreviewSafety, StepPreview } from "./params.js";
import type { Safeguards } from "./safeguards.js";

/**
 * The live previews of one generation, held to the same safety checker and policy as its final images, so every
 * consumer of `StepEvent.preview` (a library's onStep, the server's SSE and A1111's progress) gets one guarantee:
 * with a checker, no preview is shown that the checker did not pass, or that the policy would not show as a final
 * image.
 *
 * - A preview is checked as it is shown: the latent approximation at image size, through the checker's own
 *   pre-processing (the final image's: bicubic to 224 px, centre crop), so it is judged on what a viewer sees.
 * - Once a preview or a final image of the generation is flagged, every later preview counts as flagged without
 *   being checked: a checker is less reliable on a noisy approximation than on a decoded image, and the content
 *   of one generation does not change its nature from step to step, so after a hit being conservative is right.
 * - The last step's preview is almost the final image: it waits for the final images' verdict of its batch, and
 *   is withheld (or blurred) when they were flagged, even if the preview alone passed.
 * - Each step's preview is made, checked and encoded at most once, however many consumers ask for it; previews
 *   are checked one at a time in step order, so a hit spares the checks queued behind it.
 * - Checking costs a CLIP vision pass per preview (about a tenth of a guided 512 px SD1.5 step, more than a whole
 *   step at small sizes), so checks may take at most `share` of the generation's time so far (5% by default):
 *   a preview asked for while that share is spent shows the latest checked one instead (its `step` says which),
 *   with the same guarantees. The first preview and each batch's last are always checked.
 * - Without a checker, a preview costs what it always did: the linear approximation and a PNG encode.
 *
 * Previews carry no invisible watermark and no C2PA credentials: they are transient (sent to a watcher, never
 * stored or written as files), carry 1/8 of the image's resolution (a linear map of the latents, upscaled by
 * repeating each latent pixel 8x8) and are not the model's decoded output. The robust mark needs 128 px of
 * real detail and the original dwtDct mark 256x256; a mark embedded in the upscaled blocks would not survive
 * scaling the preview back to its true 1/8 size, and marking every step would cost each preview a transform of
 * the full image. The images that are kept (the final PNGs) carry both marks and the credentials.
 */
export interface StepPreviewOptions {
  /** The largest share of the generation's time that preview checks may take (default 0.05; Infinity: check all). */
  share?: number;
  /** Milliseconds, for the share (default performance.now). */
  now?: () => number;
  /**
   * Decodes the first image of a step's latents for its preview (a TAESD: the image as it is forming, at full size);
   * without one, previews are the instant linear approximation. Either way the preview is what the checker judges.
   */
  decode?: (latents: Float32Array, shape: Nchw) => Promise<RgbImage>;
}

/** Checking every preview of a 512 px SD1.5 generation would cost 10-16% of its time; 5% keeps one every few steps. */
export const DEFAULT_PREVIEW_CHECK_SHARE = 0.05;

export class StepPreviews {
  /** Set once a preview or a final image of this generation is flagged. */
  private flagged = false;
  /** Time spent in preview checks, and when the generation started, for the share. */
  private spentMs = 0;
  private readonly startMs: number;
  private readonly share: number;
  private readonly now: () => number;
  private readonly decode: StepPreviewOptions["decode"];
  /** The preview of the latest step whose check was started: what a step shows while the share is spent. */
  private latest: (() => Promise<StepPreview>) | undefined;
  /** The tail of the queue of preview checks. */
  private checks: Promise<void> = Promise.resolve();
  /** Per batch (of batchCount): resolves when its final images were judged, or the generation ended without them. */
  private readonly verdicts = new Map<number, { promise: Promise<void>; resolve: () => void }>();
  private ended = false;

  constructor(
    private readonly safeguards: Safeguards,
    opts: StepPreviewOptions = {},
  ) {
    this.share = opts.share ?? DEFAULT_PREVIEW_CHECK_SHARE;
    this.now = opts.now ?? (() => performance.now());
    this.decode = opts.decode;
    this.startMs = this.now();
  }

  /**
   * The `preview` of one step's event (`step` counts from 1). `last`: the batch's last step, whose preview waits
   * for the final verdict.
   */
  forStep(
    latents: Float32Array,
    shape: Nchw,
    at: { batch: number; step: number; last: boolean },
  ): () => Promise<StepPreview> {
    let shown: Promise<RgbImage> | undefined;
    const image = () =>
      (shown ??= this.decode
        ? this.decode(latents, shape)
        : Promise.resolve(latentPreview(latents, shape, { scale: 8 })));
    let png: Promise<Buffer> | undefined;
    const plain = (safety: PreviewSafety) => async (): Promise<StepPreview> => ({
      png: await (png ??= image().then(encodePng)),
      safety,
      step: at.step,
    });
    if (!this.safeguards.checking) return plain("unchecked");
    const passed = plain("passed");
    let judged: Promise<void> | undefined;
    let asFlagged: Promise<StepPreview> | undefined;
    const own = async (): Promise<StepPreview> => {
      await (judged ??= this.judge(image, at));
      // Read after every wait: a later hit (another step, the final images) withdraws a preview that had passed.
      return this.flagged ? (asFlagged ??= image().then((i) => this.flaggedPreview(i, at.step))) : passed();
    };
    return () => {
      if (judged === undefined && !at.last && this.latest && this.spentMs > this.share * (this.now() - this.startMs))
        return this.latest();
      if (judged === undefined) this.latest = own;
      return own();
    };
  }

  /** The final images of batch `batch` were judged; `flagged`: the checker flagged at least one. */
  judged(batch: number, flagged: boolean): void {
    if (flagged) this.flagged = true;
    this.verdict(batch).resolve();
  }

  /** The generation ended (finished, failed or cancelled): no verdict is coming for the batches left. */
  end(): void {
    this.ended = true;
    for (const v of this.verdicts.values()) v.resolve();
  }

  private async judge(image: () => Promise<RgbImage>, at: { batch: number; last: boolean }): Promise<void> {
    const check = this.checks.then(async () => {
      if (this.flagged) return;
      // Decoding the preview is the preview's cost, not the check's: only the check counts against the share.
      const shown = await image();
      const started = this.now();
      try {
        if (await this.safeguards.flags(shown)) this.flagged = true;
      } finally {
        this.spentMs += this.now() - started;
      }
    });
    // A failed check fails only its own preview (which is then not shown); the queue goes on.
    this.checks = check.catch(() => undefined);
    await check;
    if (at.last && !this.flagged && !this.ended) await this.verdict(at.batch).promise;
  }

  private verdict(batch: number): { promise: Promise<void>; resolve: () => void } {
    let v = this.verdicts.get(batch);
    if (!v) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.verdicts.set(batch, (v = { promise, resolve }));
    }
    return v;
  }

  private async flaggedPreview(image: RgbImage, step: number): Promise<StepPreview> {
    const outcome = await this.safeguards.onFlagged(image);
    switch (outcome.action) {
      case "blocked":
        return { png: undefined, safety: "blocked", step };
      case "blurred":
        return { png: await encodePng(outcome.image), safety: "blurred", step };
      default:
        return { png: await encodePng(outcome.image), safety: "flagged", step };
    }
  }
}
