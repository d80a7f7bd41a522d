import type { RgbImage } from "../image/codec.js";
import type { ImageFormat } from "../image/output-format.js";
import { finishComposedImage } from "../responsible/composed-image.js";
import { PromptPolicy } from "../responsible/prompt-policy.js";
import { resolveSigner, signImage, type ProvenanceSigner } from "../responsible/provenance/index.js";
// The types the public API shows come from their own files: the barrel's declarations reach the C2PA library's types.
import type { ProvenanceInfo } from "../responsible/provenance/provenance-info.js";
import type { SignerConfig } from "../responsible/provenance/signer-settings.js";
import {
  applyPolicy,
  DEFAULT_SAFETY_POLICY,
  findSafetyChecker,
  flaggedOutcome,
  SafetyChecker,
  type PolicyOutcome,
  type SafetyPolicy,
} from "../responsible/safety-checker.js";
import { markImage } from "../responsible/watermark/mark-image.js";
import { RobustWatermark } from "../responsible/watermark/robust.js";

/**
 * The responsible-use stages around generation, each on by default; turning one off is explicit and written
 * into the image's metadata (infotext and C2PA manifest).
 */
export interface SafeguardOptions {
  /** A safety_checker folder or file; undefined: the model folder's own, if any; false: off. */
  safetyChecker?: string | false;
  safetyPolicy?: SafetyPolicy;
  /** Invisible watermarks (the original SD1 dwtDct mark and our robust mark). Default true. */
  watermark?: boolean;
  /** C2PA content credentials; a signer config (key + certificate paths) or true for the default. Default true. */
  provenance?: boolean | SignerConfig;
  /** A rules file; prompts that match a rule are refused before any compute. */
  promptPolicy?: string;
  /** onnxruntime threads for the safety checker, as for the other networks (default: all cores). */
  threads?: number;
  /**
   * With a safety checker, the largest share of a generation's time that checking its live previews may take
   * (default 0.05); a preview asked for while it is spent shows the latest checked one. Infinity checks every one.
   */
  previewCheckShare?: number;
}

/** What happened to one image, for its infotext. */
export interface SafeguardNotes {
  /** Extra infotext keys (A1111 style "Key: value"). */
  infotext: Record<string, string>;
  /** Safeguards switched off, for the C2PA manifest. */
  off: string[];
}

export class Safeguards {
  private constructor(
    private readonly opts: SafeguardOptions,
    private readonly checker: SafetyChecker | undefined,
    private readonly checkerState: "on" | "off" | "absent",
    private readonly policy: PromptPolicy | undefined,
    private readonly robust: RobustWatermark | undefined,
    private signer: Promise<ProvenanceSigner> | undefined,
  ) {}

  static async load(modelPath: string, opts: SafeguardOptions = {}): Promise<Safeguards> {
    let checker: SafetyChecker | undefined;
    let state: "on" | "off" | "absent" = "off";
    if (opts.safetyChecker !== false) {
      const path = opts.safetyChecker ?? findSafetyChecker(modelPath);
      if (path) {
        checker = await SafetyChecker.load(path, { threads: opts.threads });
        state = "on";
      } else {
        state = "absent";
      }
    }
    const policy = opts.promptPolicy ? await PromptPolicy.load(opts.promptPolicy) : undefined;
    const robust = opts.watermark === false ? undefined : new RobustWatermark();
    return new Safeguards(opts, checker, state, policy, robust, undefined);
  }

  /** Throws PolicyRefusal (with the rule's reason) before any compute. */
  checkPrompt(prompt: string, negative: string): void {
    this.policy?.enforce(prompt, negative);
  }

  /** Whether a safety checker runs: then previews go through it too (see StepPreviews). */
  /** See SafeguardOptions.previewCheckShare. */
  get previewCheckShare(): number | undefined {
    return this.opts.previewCheckShare;
  }

  get checking(): boolean {
    return this.checker !== undefined;
  }

  private get safetyPolicy(): SafetyPolicy {
    return this.opts.safetyPolicy ?? DEFAULT_SAFETY_POLICY;
  }

  /**
   * The safety checker's verdict on one image, with the same pre-processing and decision rule as the final
   * images get in `process`; false without a checker.
   */
  async flags(image: RgbImage): Promise<boolean> {
    if (!this.checker) return false;
    return (await this.checker.check([image]))[0]!.nsfw;
  }

  /** What the safety policy of the final images makes of a flagged image (black, blurred, or kept and marked). */
  onFlagged(image: RgbImage): Promise<PolicyOutcome> {
    return flaggedOutcome(image, this.safetyPolicy);
  }

  /**
   * Safety check with its policy, then the watermarks. `jobId` goes into the robust mark's payload. `flagged`
   * says which images the checker flagged (whatever the policy then did).
   */
  async process(
    images: RgbImage[],
    jobId: string,
  ): Promise<{ images: RgbImage[]; notes: SafeguardNotes[]; flagged: boolean[] }> {
    const notes: SafeguardNotes[] = images.map(() => ({ infotext: {}, off: [] }));
    let out = images;
    let flagged = images.map(() => false);
    if (this.checker) {
      const policy = this.safetyPolicy;
      const outcomes = await applyPolicy(images, await this.checker.check(images), policy);
      out = outcomes.map((o) => o.image);
      flagged = outcomes.map((o) => o.nsfw);
      outcomes.forEach((o, i) => {
        if (o.nsfw) notes[i]!.infotext["Safety checker"] = `${o.action} (${policy} policy)`;
      });
    } else {
      for (const n of notes) {
        n.infotext["Safety checker"] = this.checkerState === "off" ? "off" : "absent";
        if (this.checkerState === "off") n.off.push("safety checker");
      }
    }
    if (!this.robust) {
      for (const n of notes) {
        n.infotext.Watermark = "off";
        n.off.push("watermark");
      }
      return { images: out, notes, flagged };
    }
    out = out.map((image, i) => {
      const marked = markImage(this.robust!, image, jobId);
      if (marked.note) notes[i]!.infotext.Watermark = marked.note;
      return marked.image;
    });
    return { images: out, notes, flagged };
  }

  /** Signs the final PNG or JPEG with C2PA content credentials (last: any later byte change breaks the binding). */
  async finish(image: Buffer, info: ProvenanceInfo): Promise<Buffer> {
    if (this.opts.provenance === false) return image;
    this.signer ??= resolveSigner(typeof this.opts.provenance === "object" ? this.opts.provenance : {});
    return signImage(image, info, await this.signer);
  }

  /**
   * An image composed from this configuration's outputs (an X/Y/Z plot's grid), encoded, watermarked and signed as
   * they are (finishComposedImage); the safety checker does not run on it, its parts having been checked.
   */
  composed(
    image: RgbImage,
    infotext: string,
    info: ProvenanceInfo,
    format: ImageFormat,
  ): Promise<{ bytes: Buffer; infotext: string }> {
    if (this.opts.provenance !== false)
      this.signer ??= resolveSigner(typeof this.opts.provenance === "object" ? this.opts.provenance : {});
    const off = this.checkerState === "off" ? ["safety checker"] : [];
    return finishComposedImage(image, infotext, { ...info, safeguardsOff: off }, format, {
      watermark: this.robust !== undefined,
      provenance: this.opts.provenance !== false,
      ...(this.signer ? { signer: this.signer } : {}),
    });
  }

  /** Infotext keys that hold for every image of this configuration. */
  get staticInfotext(): Record<string, string> {
    return this.opts.provenance === false ? { Provenance: "off" } : {};
  }

  async release(): Promise<void> {
    await this.checker?.release();
  }
}
