import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { snapshotRepo } from "../hub/cache-path.js";
import { buildInfotext } from "../image/infotext.js";
import type { ProvenanceInfo } from "../responsible/provenance/provenance-info.js";
import { findSampler, findScheduleType, type ScheduleType } from "../schedulers/index.js";
import type { ResolvedParams } from "./params.js";

/** The model as outputs name it: A1111's "Model" and "Model hash" infotext fields. */
export interface ModelIdentity {
  readonly name: string;
  /** The short (10 hex digit) hash A1111 writes. */
  readonly hash: string;
}

/**
 * A model's name as A1111 writes it: the file name without .safetensors, or a diffusers folder's name; for a
 * snapshot of the Hugging Face cache, whose folder is named by a commit, its repository (OWNER/NAME).
 */
export function modelDisplayName(path: string): string {
  return snapshotRepo(path) ?? (basename(path).replace(/\.safetensors$/i, "") || basename(dirname(path)));
}

/**
 * The "Schedule type" A1111 writes: the type asked for, or for "Automatic" the type A1111 resolves it to where the
 * sampler names one (DPM2: Karras); none where Automatic is the sampler's own schedule (Euler, DDIM).
 */
function writtenScheduleType(sampler: string, schedule: ScheduleType): string | undefined {
  const type = schedule === "automatic" ? findSampler(sampler)?.defaultSchedule : schedule;
  return type === undefined ? undefined : findScheduleType(type)?.label;
}

/** AUTOMATIC1111's parameters text of one image. `extra`: keys of the safeguards and the family. */
export function imageInfotext(
  p: ResolvedParams,
  seed: bigint,
  model: ModelIdentity,
  extra: Record<string, string>,
): string {
  return buildInfotext({
    prompt: p.prompt,
    negativePrompt: p.negativePrompt,
    steps: p.steps,
    sampler: samplerLabel(p),
    scheduleType: writtenScheduleType(p.sampler, p.schedule),
    cfgScale: p.cfgScale,
    seed,
    width: p.width,
    height: p.height,
    modelHash: model.hash,
    model: model.name,
    denoisingStrength: p.hires?.denoisingStrength ?? (p.initImage === undefined ? undefined : p.denoisingStrength),
    clipSkip: p.clipSkip > 1 ? p.clipSkip : undefined,
    rng: "CPU",
    extra,
  });
}

/** What the C2PA manifest says of one image: how it was made, from what, and which safeguards were off. */
export async function provenanceInfo(
  p: ResolvedParams,
  seed: bigint,
  model: ModelIdentity,
  safeguardsOff: string[],
): Promise<ProvenanceInfo> {
  const init =
    p.initImage === undefined ? undefined : typeof p.initImage === "string" ? await readFile(p.initImage) : p.initImage;
  return {
    model: `${model.name} [${model.hash}]`,
    sampler: samplerLabel(p),
    prompt: p.prompt,
    negativePrompt: p.negativePrompt,
    seed,
    steps: p.steps,
    cfgScale: p.cfgScale,
    denoisingStrength: init ? p.denoisingStrength : undefined,
    ingredient: init,
    ingredientTitle: typeof p.initImage === "string" ? basename(p.initImage) : undefined,
    safeguardsOff,
  };
}

function samplerLabel(p: ResolvedParams): string {
  return findSampler(p.sampler)?.label ?? p.sampler;
}
