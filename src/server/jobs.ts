import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { InputError } from "../errors.js";
import { findSampler, listSamplers, requireScheduleType, resolveSamplerSchedule } from "../schedulers/index.js";
import { Id, JobCreateRequest, JobListQuery, type JobCreated, type JobList, type JobStatus } from "./api-types.js";
import { describeModel, knownCheckpoint } from "./catalog.js";
import type { ServerContext } from "./context.js";
import { HttpError, notFound, parseRequest } from "./http-errors.js";
import { checkSamplerKnobs, jobParamsOf } from "./job-params.js";
import { acceptControlUnits } from "./control-units.js";
import { checkUploads, readImageUpload } from "./uploads.js";
import { checkWorkBudget } from "./work-budget.js";
import { checkSdVae } from "./vae-files.js";

const IdParams = z.object({ id: Id });

/** How long DELETE waits for a running job to reach its next step boundary before answering 202. */
const CANCEL_WAIT_MS = 10_000;

export const jobUrl = (id: string) => `/api/v1/jobs/${id}`;

/** Our API for jobs: submit, follow (status and SSE), cancel, history. */
export function registerJobRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/api/v1/jobs", async (request, reply): Promise<JobCreated> => {
    const body = parseRequest(JobCreateRequest, request.body, "body");
    if (body.sampler_name !== undefined) requireSampler(body.sampler_name, "sampler_name");
    if (body.scheduler !== undefined) requireSchedule(body.sampler_name, body.scheduler);
    const choice = body.model === undefined ? undefined : await knownCheckpoint(ctx, body.model, "model");
    checkSdVae(ctx, body.sd_vae);
    const model = ctx.queue.modelFor(choice);
    if (body.refiner_switch_at !== undefined && !(await describeModel(model)).refiner) {
      throw new HttpError(
        400,
        "invalid_request",
        "refiner_switch_at needs a refiner, and this server has none: leave it out, or start the server with diffuse serve --refiner PATH",
        "refiner_switch_at",
      );
    }
    const control = await acceptControlUnits(
      body.controlnet ?? [],
      ctx.config.controlnetDirs ?? [],
      (i) => `controlnet.${i}`,
    );
    const uploads = {
      initImage: body.init_image === undefined ? undefined : await readImageUpload(body.init_image, "init_image"),
      mask: body.mask === undefined ? undefined : await readImageUpload(body.mask, "mask"),
      ...(control.images.length ? { controlImages: control.images } : {}),
    };
    const params = jobParamsOf(
      body.type,
      { ...body, controlnet: control.units.length ? control.units : undefined },
      uploads,
    );
    try {
      checkSamplerKnobs(params);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      throw new HttpError(422, "invalid_request", e.message);
    }
    // Before decoding the uploads: the cheap refusal first.
    await checkWorkBudget(ctx, params, uploads, model);
    await checkUploads(uploads, {
      initImage: "init_image",
      mask: "mask",
      controlImage: (i) => `controlnet.${i}.image`,
    });
    const job = await ctx.queue.submit({
      type: body.type,
      params,
      source: "api",
      uploads,
      ...(choice ? { model: choice.name } : {}),
    });
    void reply.status(202).header("location", jobUrl(job.id));
    return {
      id: job.id,
      state: "queued",
      position: ctx.queue.position(job) ?? 0,
      url: jobUrl(job.id),
      events_url: `${jobUrl(job.id)}/events`,
    };
  });

  app.get("/api/v1/jobs", async (request): Promise<JobList> => {
    const { limit } = parseRequest(JobListQuery, request.query, "query");
    return { jobs: ctx.views.many(ctx.store.list(limit)) };
  });

  app.get("/api/v1/jobs/:id", async (request): Promise<JobStatus> => {
    const { id } = parseRequest(IdParams, request.params, "params");
    const job = ctx.store.get(id);
    if (!job) throw notFound(`no job ${id}: it was never submitted to this server's data folder`);
    return ctx.views.one(job);
  });

  app.delete("/api/v1/jobs/:id", async (request, reply): Promise<JobStatus> => {
    const { id } = parseRequest(IdParams, request.params, "params");
    const outcome = await ctx.queue.cancel(id);
    switch (outcome.kind) {
      case "missing":
        throw notFound(`no job ${id}`);
      case "finished":
        throw new HttpError(
          409,
          "conflict",
          `job ${id} is already ${outcome.job.state}: only queued or running jobs can be cancelled`,
        );
      case "cancelled":
        return ctx.views.one(ctx.store.get(id)!);
      case "cancelling": {
        // The engine stops at the next step boundary; answer with the final state when that comes soon.
        const timeout = new Promise<undefined>((resolve) =>
          setTimeout(() => resolve(undefined), CANCEL_WAIT_MS).unref(),
        );
        const finished = await Promise.race([outcome.finished, timeout]);
        if (!finished) void reply.status(202);
        return ctx.views.one(finished ?? ctx.store.get(id)!);
      }
    }
  });

  app.get("/api/v1/jobs/:id/events", async (request, reply) => {
    const { id } = parseRequest(IdParams, request.params, "params");
    if (!ctx.store.get(id)) throw notFound(`no job ${id}`);
    reply.hijack();
    const stream = ctx.events.openStream(reply.raw, ctx.config.sseKeepAliveMs);
    // Subscribe, then read the state, with no await in between: nothing can slip through the gap.
    const unsubscribe = ctx.events.subscribe(id, (e) => stream.send(e));
    stream.onClose(unsubscribe);
    const job = ctx.store.get(id)!;
    switch (job.state) {
      case "queued":
        stream.send({ event: "queued", data: { position: ctx.queue.position(job) ?? 0 } });
        break;
      case "running": {
        stream.send({ event: "running", data: { started_at: job.startedAt ?? new Date().toISOString() } });
        const p = ctx.queue.live(id)?.progress ?? null;
        if (p)
          stream.send({ event: "step", data: { step: p.step, steps: p.steps, batch: p.batch, batches: p.batches } });
        break;
      }
      case "done":
        stream.send({ event: "done", data: { images: ctx.views.one(job).images } });
        break;
      case "failed":
        stream.send({ event: "error", data: { message: job.error ?? "failed" } });
        break;
      case "cancelled":
        stream.send({ event: "cancelled", data: { message: job.error ?? "cancelled" } });
        break;
    }
  });
}

/**
 * An unknown schedule type, or one for a sampler with its own timestep grid, is a 422 at submission. Without a
 * sampler the model's default decides, which the job checks when it runs: only the name is checked here.
 */
function requireSchedule(sampler: string | undefined, schedule: string): void {
  try {
    if (sampler === undefined) requireScheduleType(schedule);
    else resolveSamplerSchedule(sampler, schedule);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new HttpError(422, "invalid_request", `scheduler: ${e.message}`, "scheduler");
  }
}

/** Unknown sampler names are a 400 at submission, not a failed job a moment later. */
export function requireSampler(name: string, field: string): void {
  if (findSampler(name)) return;
  const names = listSamplers()
    .map((s) => s.name)
    .join(", ");
  throw new HttpError(
    400,
    "invalid_request",
    `${field}: unknown sampler "${name}"; use one of ${names} (or their A1111 labels, see GET /api/v1/samplers)`,
    field,
  );
}
