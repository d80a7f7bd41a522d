import type { FastifyInstance } from "fastify";
import { DEFAULT_SAMPLER } from "../pipeline/params.js";
import { listSamplers, scheduleTypesFor } from "../schedulers/index.js";
import {
  ModelListQuery,
  ServedModelRequest,
  type AvailableModel,
  type ModelInfo,
  type ModelList,
  type SamplerList,
} from "./api-types.js";
import { matchesModel } from "./a1111-mapping.js";
import { checkpointTitle, type KnownCheckpoint } from "./checkpoints.js";
import type { ServerContext } from "./context.js";
import { HttpError, parseRequest } from "./http-errors.js";
import type { ServedModel } from "./job-queue.js";

/** What can be chosen: the models (the served one, and every checkpoint the store knows) and the samplers. */
export function registerCatalogRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/api/v1/models", async (request): Promise<ModelList> => {
    const { wait } = parseRequest(ModelListQuery, request.query, "query");
    return modelList(ctx, wait === "true");
  });

  // The served model: new jobs go to the one named, which loads in the background while the jobs queued for the
  // old one finish on it. GET /api/v1/models follows the load (state, error).
  app.put("/api/v1/models/served", async (request, reply): Promise<ModelList> => {
    const { name } = parseRequest(ServedModelRequest, request.body, "body");
    const choice = await knownCheckpoint(ctx, name, "name");
    // The outcome is logged, and shown by GET /api/v1/models: a model that cannot load leaves the old one served.
    ctx.queue.switchModel(choice).catch(() => undefined);
    void reply.status(202);
    return modelList(ctx, false);
  });

  app.get(
    "/api/v1/samplers",
    async (): Promise<SamplerList> => ({
      samplers: listSamplers().map((s) => ({
        name: s.name,
        label: s.label,
        stochastic: s.stochastic,
        calls_per_step: s.callsPerStep,
        schedule_types: scheduleTypesFor(s.name).map((t) => t.label),
      })),
      default: DEFAULT_SAMPLER,
    }),
  );
}

async function modelList(ctx: ServerContext, wait: boolean): Promise<ModelList> {
  const served = wait || ctx.model.isLoaded ? [await servedInfo(ctx)] : [];
  const known = await ctx.checkpoints.list();
  const name = ctx.model.name;
  const listed = known.some((c) => c.name === name)
    ? known
    : [{ name, path: ctx.model.path, family: "unknown", source: "given", aliases: [] }, ...known];
  const available = listed.map((c): AvailableModel => {
    const status = ctx.queue.modelStatus(c.name);
    // The started model outside the store is hashed when it loads.
    const loaded = served[0]?.name === c.name ? served[0] : undefined;
    const hash = c.hash ?? loaded?.hash ?? null;
    return {
      name: c.name,
      title: checkpointTitle({ ...c, ...(hash ? { hash } : {}) }) ?? null,
      hash,
      family: loaded?.family ?? c.family,
      source: c.source,
      served: c.name === name,
      state: status.state,
      error: status.error ?? null,
    };
  });
  // The served model first, as the page and older clients read models[0].
  available.sort((a, b) => Number(b.served) - Number(a.served));
  return { models: served, served: name, available };
}

async function servedInfo(ctx: ServerContext): Promise<ModelInfo> {
  const m = await describeModel(ctx.model);
  return {
    name: m.name,
    hash: m.hash,
    default_size: m.defaultSize,
    default_cfg_scale: m.defaultCfgScale,
    default_steps: m.defaultSteps,
    default_sampler: m.defaultSampler,
    prompt_examples: m.promptExamples
      ? { prompts: m.promptExamples.prompts, negative_prompt: m.promptExamples.negativePrompt ?? null }
      : null,
    family: m.family,
    refiner: m.refiner ? { name: m.refiner.name, hash: m.refiner.hash } : null,
    loaded: ctx.model.isLoaded,
  };
}

/**
 * The known checkpoint a client names (see Checkpoints.find); an unknown one is a 400 that lists the names it
 * could use. `field`: the request field, for the error.
 */
export async function knownCheckpoint(ctx: ServerContext, value: string, field: string): Promise<KnownCheckpoint> {
  // The served model by its title or hash, which a model outside the store has only once it has loaded (waited
  // for only when nothing else matches).
  const served = async (wait: boolean) => {
    const d = wait || ctx.model.isLoaded ? await ctx.model.describe().catch(() => undefined) : undefined;
    if (!d || !matchesModel(value, d)) return undefined;
    const listed = (await ctx.checkpoints.list()).find((c) => c.name === d.name);
    return (
      listed ?? {
        name: d.name,
        path: d.path,
        hash: d.hash,
        sha256: d.sha256,
        family: d.family,
        source: "given",
        aliases: [],
      }
    );
  };
  const found = (await served(false)) ?? (await ctx.checkpoints.find(value)) ?? (await served(true));
  if (found) return found;
  throw new HttpError(
    400,
    "unknown_model",
    `${field}: no model "${value}" is known to this server; ${await knownNames(ctx)}`,
    field,
  );
}

/** The names a client could use, for an error message; says how to make a new file known. */
export async function knownNames(ctx: ServerContext): Promise<string> {
  const names = (await ctx.checkpoints.list()).map((c) => checkpointTitle(c) ?? c.name);
  const shown = names
    .slice(0, 50)
    .map((n) => JSON.stringify(n))
    .join(", ");
  const more = names.length > 50 ? ` and ${names.length - 50} more (GET /api/v1/models lists them)` : "";
  if (ctx.checkpoints.startedOnly) {
    return `use ${shown}: with --queue the workers load the models, and this server sends its jobs to the workers of that one (start diffuse worker and diffuse serve with another --model for another)`;
  }
  return `use one of ${shown}${more} (a file added since the server started is found after POST /sdapi/v1/refresh-checkpoints)`;
}

/** A model's description, waiting for it to load; a model that cannot load is a 503 with the reason. */
export async function describeModel(model: ServedModel) {
  try {
    return await model.describe();
  } catch (e) {
    throw new HttpError(
      503,
      "model_unavailable",
      `the model ${model.path} could not be loaded: ${(e as Error).message}`,
    );
  }
}
