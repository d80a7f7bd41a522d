import { checkMemory, machineMemoryLimit, type ModelProfile } from "../pipeline/generation-estimate.js";
import { resolveParams, type ResolvedParams } from "../pipeline/params.js";
import { findSampler } from "../schedulers/index.js";
import type { JobParams } from "./api-types.js";
import { describeModel } from "./catalog.js";
import type { ServerContext } from "./context.js";
import { HttpError } from "./http-errors.js";
import type { ServedModel } from "./job-queue.js";
import { generateParamsOf } from "./job-params.js";
import type { Uploads } from "./store.js";

/**
 * How much compute a generation asks for, in megapixel-steps: width x height / 1,000,000, times the denoising
 * steps the sampler runs (img2img runs steps x denoising strength of them, as the pipeline's schedule start
 * does), times the model calls per step (Heun-like samplers call it twice), times the images (batch_size x
 * n_iter). Each field has its own limit, but their product spans five orders of magnitude: the unit tracks
 * the UNet's work, which dominates a run. It is linear in pixels, so it understates very large images (their
 * attention grows faster): a rough measure, meant to stop the extremes, not to price requests.
 */
export function workOf(p: ResolvedParams): { megapixelSteps: number; detail: string } {
  const sampler = findSampler(p.sampler);
  const calls = sampler?.callsPerStep ?? 1;
  const steps = p.initImage === undefined ? p.steps : Math.min(Math.floor(p.steps * p.denoisingStrength), p.steps);
  const images = p.batchSize * p.batchCount;
  const parts = [
    `${p.width}x${p.height}`,
    p.initImage === undefined
      ? `${steps} steps`
      : `${steps} steps (${p.steps} x denoising strength ${p.denoisingStrength})`,
    ...(calls > 1 ? [`${calls} model calls per step (${sampler!.label})`] : []),
    `${images} image${images === 1 ? "" : "s"}`,
  ];
  const first = ((p.width * p.height) / 1e6) * steps * calls * images;
  const h = p.hires;
  if (!h) return { megapixelSteps: first, detail: parts.join(" x ") };
  // The hires fix's second pass runs its steps (or the first pass's count) at the larger size.
  const hiresSampler = findSampler(h.sampler);
  const hiresCalls = hiresSampler?.callsPerStep ?? 1;
  const hiresSteps = h.steps || p.steps;
  const second = ((h.width * h.height) / 1e6) * hiresSteps * hiresCalls * images;
  return {
    megapixelSteps: first + second,
    detail: `${parts.join(" x ")}, then the hires pass: ${h.width}x${h.height} x ${hiresSteps} steps${hiresCalls > 1 ? ` x ${hiresCalls} model calls per step` : ""} x ${images} image${images === 1 ? "" : "s"}`,
  };
}

/**
 * Refuses a job whose work is over the server's budget, or whose memory estimate is over the server's limit (422 on
 * both APIs), with the figure, the limit and how to get under it or raise it. The parameters are resolved exactly as
 * the job will resolve them when it runs, so defaults count: a missing size is the model's native one (the job's
 * model's). The work is checked first, without waiting for a model still loading when the size is given; the memory
 * check needs the model's profile, so a job within the budget waits for its model to load.
 */
export async function checkWorkBudget(
  ctx: ServerContext,
  params: JobParams,
  uploads: Uploads,
  served: ServedModel = ctx.model,
): Promise<void> {
  const { megapixelSteps, detail, resolved, model } = await jobWork(ctx, params, uploads, served);
  checkWork(ctx, megapixelSteps, `this request asks for ${figure(megapixelSteps)} megapixel-steps of work (${detail})`);
  // A model that cannot load fails the job with its reason, as before this check.
  const described = model ?? (await describeModel(served).catch(() => undefined));
  if (described) checkMemoryAtAcceptance(ctx, resolved, described);
}

/** The work of one job as it will run, defaults filled as the job will fill them (see checkWorkBudget). */
export async function jobWork(
  ctx: ServerContext,
  params: JobParams,
  uploads: Uploads,
  served: ServedModel = ctx.model,
): Promise<{ megapixelSteps: number; detail: string; resolved: ResolvedParams; model?: { profile?: ModelProfile } }> {
  const sized = params.width !== undefined && params.height !== undefined;
  // The model's own defaults (steps, sampler) count when it is loaded; it is waited for only for a missing size.
  const model = sized && !served.isLoaded ? undefined : await describeModel(served);
  const resolved = resolveParams(generateParamsOf(params, uploads), {
    size: model?.defaultSize ?? params.width!,
    steps: model?.defaultSteps,
    sampler: model?.defaultSampler,
    // Whether a refiner exists is checked where the request is read; the hand-over costs no extra work.
    refinerSwitchAt: params.refiner_switch_at,
    randomSeed: () => BigInt(params.seed),
    upscalers: ctx.upscalers.modelNames(),
  });
  return { ...workOf(resolved), resolved, model };
}

/**
 * Refuses work over the server's budget (422 on both APIs): `asks` says what the request asks for, with the figure;
 * the message adds the limit and how to get under it or raise it.
 */
export function checkWork(ctx: ServerContext, megapixelSteps: number, asks: string): void {
  const budget = ctx.config.workBudget;
  if (megapixelSteps <= budget) return;
  throw new HttpError(
    422,
    "over_work_budget",
    `${asks}, over this server's limit of ${figure(budget)} per request: ` +
      "ask for fewer images (batch_size x n_iter), fewer steps or fewer pixels, or split it into several requests; " +
      `whoever runs the server can raise the limit with diffuse serve --work-budget ${Math.ceil(megapixelSteps)}`,
  );
}

/**
 * Refuses a job whose memory estimate (generation-estimate.ts) is over the server's limit (serve --max-memory, else
 * what the machine has free now), with the same message as the CLI's and how to raise the limit: 422 on both APIs.
 * A model served by remote workers has no profile here, and their machines are not this one: no check.
 */
function checkMemoryAtAcceptance(ctx: ServerContext, p: ResolvedParams, model: { profile?: ModelProfile }): void {
  if (!model.profile || ctx.config.queue !== undefined) return;
  const limit = ctx.config.maxMemory ?? machineMemoryLimit();
  const { estimate, refusal } = checkMemory(model.profile, p, { threads: 1 }, limit);
  if (!refusal) return;
  throw new HttpError(
    422,
    "over_memory",
    `${refusal}; whoever runs the server can raise the limit with diffuse serve --max-memory ${Math.ceil(estimate.bytes / 1024 ** 3)}`,
  );
}

/** 10.5, 0.1, 2,000, 80,531: three significant digits below 100, whole numbers above. */
export function figure(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString("en-US") : String(Number(n.toPrecision(3)));
}
