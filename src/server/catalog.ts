import type { FastifyInstance } from "fastify";
import { DEFAULT_SAMPLER } from "../pipeline/params.js";
import { listSamplers } from "../schedulers/index.js";
import type { ModelList, SamplerList } from "./api-types.js";
import type { ServerContext } from "./context.js";
import { HttpError } from "./http-errors.js";

/** What can be chosen: the served model and the samplers. */
export function registerCatalogRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/api/v1/models", async (): Promise<ModelList> => {
    const m = await describeModel(ctx);
    return {
      models: [{
        name: m.name,
        hash: m.hash,
        default_size: m.defaultSize,
        default_cfg_scale: m.defaultCfgScale,
        default_steps: m.defaultSteps,
        default_sampler: m.defaultSampler,
        family: m.family,
        refiner: m.refiner ? { name: m.refiner.name, hash: m.refiner.hash } : null,
        loaded: ctx.model.isLoaded,
      }],
    };
  });

  app.get("/api/v1/samplers", async (): Promise<SamplerList> => ({
    samplers: listSamplers().map((s) => ({ name: s.name, label: s.label, stochastic: s.stochastic, calls_per_step: s.callsPerStep })),
    default: DEFAULT_SAMPLER,
  }));
}

/** The model's description, waiting for it to load; a model that cannot load is a 503 with the reason. */
export async function describeModel(ctx: ServerContext) {
  try {
    return await ctx.model.describe();
  } catch (e) {
    throw new HttpError(503, "model_unavailable", `the model ${ctx.model.path} could not be loaded: ${(e as Error).message}`);
  }
}
