import type { ModelFamily } from "../configs/pipeline.js";
import type { RgbImage } from "../image/codec.js";
import type { ImageFormat } from "../image/output-format.js";
import type { LoadOptions } from "../pipeline/load-pipeline.js";
import type { GenerateParams, PreviewSafety, ResolvedParams } from "../pipeline/params.js";
import type { ModelProfile } from "../pipeline/generation-estimate.js";
import type { PromptExamples } from "../pipeline/prompt-examples.js";
import type { EmbeddingEncoder } from "../pipeline/textual-inversions.js";
import type { TransportedError } from "./transported-error.js";

/** A checkpoint as A1111's sd-models lists it. */
export interface CheckpointDescription {
  name: string;
  path: string;
  /** A1111's short hash (10 hex digits) and the full sha256. */
  hash: string;
  sha256: string;
}

/** What a loaded model is, as the thread reports it once loading succeeded. */
export interface LoadedModel extends CheckpointDescription {
  /** sd1, sd2, sdxl or sdxl-refiner (the page shows SDXL's second prompts for sdxl). */
  family: ModelFamily;
  defaultSize: number;
  /** The guidance a request without cfgScale gets (the model's generation_config.json, LCM's 8.5, else 7). */
  defaultCfgScale: number;
  /** Steps and sampler a request without them gets on our API (the model's, else 20 and Euler a). */
  defaultSteps: number;
  defaultSampler: string;
  /** What the model itself recommends (generation_config.json, LCM), which A1111's API uses over its own 50 Euler steps. */
  recommendedSteps?: number;
  recommendedSampler?: string;
  /** Prompts that suit the model (its folder's prompt_examples.json), when it has them. */
  promptExamples?: PromptExamples;
  /** The refiner loaded with the model (serve --refiner), which requests may hand over to. */
  refiner?: CheckpointDescription;
  /** Its text encoders as textual-inversion embeddings fit them (which embeddings are loaded or skipped). */
  textEncoders: EmbeddingEncoder[];
  /** What its generations' memory depends on, for the check at acceptance (absent from a remote worker's model). */
  profile?: ModelProfile;
}

/** Load options as they can cross to the thread: `onStatus` stays with the host and is fed by status messages. */
export type ThreadLoadOptions = Omit<LoadOptions, "onStatus">;

/** A generation's parameters without what cannot cross (the callbacks, the signal: the host keeps those). */
export type ThreadGenerateParams = Omit<GenerateParams, "onStep" | "signal" | "skipBatch">;

export interface WorkerData {
  path: string;
  options: ThreadLoadOptions;
}

export type HostMessage =
  | {
      type: "generate";
      id: number;
      params: ThreadGenerateParams;
      /** Formats each image is encoded to in the thread (watermark and credentials included). */
      formats: ImageFormat[];
      /** Previews made and sent without being asked, at most this often (plus each batch's last step); undefined: only on request. */
      previewIntervalMs: number | undefined;
      control: SharedArrayBuffer;
    }
  | { type: "cancel"; id: number }
  /** Stop, release the networks and end the thread. */
  | { type: "close" }
  /** A step's preview asked for by the host (a library caller's `e.preview()`). */
  | { type: "preview"; id: number; batch: number; step: number };

export interface TransportedPreview {
  png: Uint8Array | undefined;
  safety: PreviewSafety;
  step: number;
}

export interface TransportedImage {
  image: RgbImage;
  seed: bigint;
  subseed?: bigint;
  infotext: string;
  encoded: Partial<Record<ImageFormat, Uint8Array>>;
}

export type ThreadMessage =
  | { type: "status"; message: string }
  | { type: "loaded"; model: LoadedModel }
  | { type: "load-failed"; error: TransportedError }
  | {
      type: "step";
      id: number;
      step: number;
      steps: number;
      batch: number;
      batches: number;
      elapsed: number;
      latents: Float32Array;
      /** The thread is making this step's preview and sends it unasked. */
      previewing: boolean;
    }
  | {
      type: "preview";
      id: number;
      batch: number;
      step: number;
      preview: TransportedPreview | undefined;
      error?: TransportedError;
    }
  | {
      type: "done";
      id: number;
      images: TransportedImage[];
      controlMaps: RgbImage[];
      parameters: ResolvedParams;
      info: string;
      warnings: string[];
    }
  | { type: "failed"; id: number; error: TransportedError };
