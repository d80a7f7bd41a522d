import { latentUpscalerNames } from "../pipeline/hires-upscalers.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { readImageParameters } from "../image/image-parameters.js";
import type { CheckpointDescription } from "../worker/model-host.js";
import { stringifyExact } from "../json-exact.js";
import { listSamplers, listScheduleTypes, type ScheduleType, type ScheduleTypeInfo } from "../schedulers/index.js";
import {
  a1111Info,
  a1111Job,
  a1111ParsedParameters,
  a1111Timestamp,
  a1111Title,
  A1111Error,
  echoParameters,
  usedParameters,
} from "./a1111-mapping.js";
import { detectedMaps } from "./a1111-controlnet.js";
import { registerExtraNetworkRoutes } from "./a1111-extra-networks.js";
import { registerUpscaleRoutes } from "./a1111-upscale.js";
import { registerA1111HostRoutes } from "./a1111-host-routes.js";
import { a1111SamplerAliases } from "./a1111-sampler-aliases.js";
import { a1111SdVae, registerA1111VaeRoutes } from "./a1111-vae.js";
import { runA1111XyzPlot, XYZ_SCRIPT } from "./a1111-xyz.js";
import {
  A1111Img2Img,
  A1111PngInfo,
  A1111ProgressQuery,
  A1111Txt2Img,
  IMG2IMG_DEFAULTS,
  TXT2IMG_DEFAULTS,
} from "./a1111-schema.js";
import { describeModel, knownCheckpoint, knownNames } from "./catalog.js";
import { checkpointTitle, type KnownCheckpoint } from "./checkpoints.js";
import type { ServerContext } from "./context.js";
import { describeError, fieldName, HttpError } from "./http-errors.js";
import { decodeBase64Image } from "./uploads.js";
import { PromptStyles } from "./prompt-styles.js";
import { checkWorkBudget } from "./work-budget.js";
import { InputError } from "../errors.js";

/** Options A1111 clients read or set most; the rest of A1111's settings do not exist here. */
const OPTION_DEFAULTS: Readonly<Record<string, unknown>> = {
  samples_format: "png",
  CLIP_stop_at_last_layers: 1,
  eta_noise_seed_delta: 0,
  sd_vae: "Automatic",
  enable_pnginfo: true,
  save_images_before_face_restoration: false,
  show_progress_every_n_steps: 1,
  live_previews_enable: true,
  // A1111's ControlNet extension's setting: true leaves the control maps out of txt2img/img2img responses.
  control_net_no_detectmap: false,
};

/**
 * The AUTOMATIC1111-compatible API (`/sdapi/v1/*`): same paths, field names and response shapes, so existing
 * clients work unchanged. Generation requests go through the same queue as our jobs (and appear in the
 * history); the request simply stays open until its job is finished.
 */
export function registerA1111Routes(app: FastifyInstance, ctx: ServerContext): void {
  void app.register(async (scope) => {
    scope.setErrorHandler(a1111ErrorHandler);
    // A seed sent as a big JSON integer is echoed in `parameters` as one, exactly, as A1111 does.
    scope.setReplySerializer((payload) => stringifyExact(payload));

    scope.post("/sdapi/v1/txt2img", async (request) => generate(ctx, request.body, false));
    scope.post("/sdapi/v1/img2img", async (request) => generate(ctx, request.body, true));

    scope.get("/sdapi/v1/progress", async (request) => {
      const { skip_current_image } = parse(A1111ProgressQuery, request.query, "query");
      return progress(ctx, skip_current_image);
    });

    scope.post("/sdapi/v1/skip", async () => {
      ctx.queue.skipRunning();
      return null;
    });

    scope.post("/sdapi/v1/interrupt", async () => {
      await ctx.queue.interruptRunning();
      return {};
    });

    scope.get("/sdapi/v1/options", async () => {
      const m = await describeModel(ctx.model);
      return {
        ...OPTION_DEFAULTS,
        ...ctx.store.options(),
        sd_model_checkpoint: a1111Title(m),
        sd_checkpoint_hash: m.sha256,
      };
    });

    scope.post("/sdapi/v1/options", async (request) => {
      const body = parse(z.record(z.string(), z.unknown()), request.body, "body");
      // Values first: a bad one is the client's error whether or not the model is loaded yet.
      const clipSkip = body["CLIP_stop_at_last_layers"];
      if (
        clipSkip !== undefined &&
        !(typeof clipSkip === "number" && Number.isInteger(clipSkip) && clipSkip >= 1 && clipSkip <= 12)
      ) {
        throw new A1111Error(422, "CLIP_stop_at_last_layers must be an integer from 1 to 12");
      }
      const checkpoint = body["sd_model_checkpoint"];
      if (checkpoint !== undefined && typeof checkpoint !== "string")
        throw new A1111Error(
          422,
          "sd_model_checkpoint must be a string: a title, name or hash as /sdapi/v1/sd-models lists it",
        );
      a1111SdVae(ctx, body["sd_vae"], 400);
      const choice = checkpoint === undefined ? undefined : await a1111Checkpoint(ctx, checkpoint, 400);
      const { sd_model_checkpoint: _m, sd_checkpoint_hash: _h, ...rest } = body;
      ctx.store.setOptions(rest);
      // As A1111 does, the answer comes once the model has loaded (jobs queued for the old one go on meanwhile);
      // one that cannot load leaves the old one served, and the error says why.
      if (choice) await ctx.queue.switchModel(choice);
      return null;
    });

    registerA1111VaeRoutes(scope, ctx);

    scope.get("/sdapi/v1/sd-models", async () => {
      const served = await describeModel(ctx.model);
      const listed = (await ctx.checkpoints.list({ hashes: true })).map((c) => sdModel(c, served));
      if (!listed.some((c) => c.model_name === served.name))
        listed.unshift(sdModel({ ...served, family: served.family, source: "given", aliases: [] }, served));
      // The refiner is listed too: clients take refiner_checkpoint titles from here.
      if (served.refiner && !listed.some((c) => c.filename === served.refiner!.path))
        listed.push(sdModel({ ...served.refiner, family: "sdxl-refiner", source: "given", aliases: [] }, served));
      return listed;
    });

    scope.post("/sdapi/v1/refresh-checkpoints", async () => {
      await ctx.checkpoints.refresh({ hashes: true });
      return null;
    });

    scope.get("/sdapi/v1/samplers", async () =>
      listSamplers().map((s) => ({
        name: s.label,
        aliases: [...a1111SamplerAliases(s.label), s.name],
        // A1111's sampler options: the schedule type its "Automatic" means, where it names one.
        options: s.defaultSchedule
          ? { scheduler: s.defaultSchedule }
          : s.label.endsWith(" Karras")
            ? { scheduler: "karras" }
            : {},
      })),
    );

    scope.get("/sdapi/v1/schedulers", async () => listScheduleTypes().map(a1111SchedulerItem));

    registerUpscaleRoutes(scope, ctx, parse);

    scope.get("/sdapi/v1/latent-upscale-modes", async () => latentUpscalerNames().map((name) => ({ name })));

    registerExtraNetworkRoutes(scope, ctx);
    registerA1111HostRoutes(scope, ctx);

    scope.post("/sdapi/v1/png-info", async (request) => {
      const { image } = parse(A1111PngInfo, request.body, "body");
      const bytes = decodeBase64Image(image, "image");
      // PNG text chunks, or the EXIF UserComment of a JPEG or WebP, as A1111 writes and reads them.
      const found = await readImageParameters(bytes, "image");
      const info = found.parameters ?? "";
      return { info, items: found.text, parameters: a1111ParsedParameters(info) };
    });
  });
}

async function generate(ctx: ServerContext, body: unknown, img2img: boolean) {
  const req = withStyles(ctx, img2img ? parse(A1111Img2Img, body, "body") : parse(A1111Txt2Img, body, "body"));
  // override_settings' checkpoint: this job runs on that model (loaded for it), the served one stays, as A1111
  // restores it afterwards; with override_settings_restore_afterwards false the server switches to it.
  const checkpoint = req.override_settings?.["sd_model_checkpoint"];
  const choice = typeof checkpoint === "string" ? await a1111Checkpoint(ctx, checkpoint, 404) : undefined;
  if (choice && (body as Record<string, unknown>)["override_settings_restore_afterwards"] === false)
    await ctx.queue.switchModel(choice);
  const served = ctx.queue.modelFor(choice);
  const model = await describeModel(served);
  const options = ctx.store.options();
  const clipSkip = typeof options["CLIP_stop_at_last_layers"] === "number" ? options["CLIP_stop_at_last_layers"] : 1;
  const { type, params, uploads, detectMaps } = await a1111Job(req, img2img, {
    clipSkip,
    model,
    controlnetDirs: ctx.config.controlnetDirs ?? [],
    sdVae: a1111SdVae(ctx, req.override_settings?.["sd_vae"] ?? options["sd_vae"], 404),
    options,
  });
  const script = req.script_name?.trim();
  if (script) {
    if (script.toLowerCase() !== XYZ_SCRIPT)
      throw new A1111Error(
        422,
        `Script '${script}' not found: this server has "${XYZ_SCRIPT}" (see GET /sdapi/v1/scripts)`,
      );
    const plot = await runA1111XyzPlot({
      ctx,
      img2img,
      scriptArgs: req.script_args ?? [],
      type,
      params,
      uploads,
      choice,
      findCheckpoint: (name) => a1111Checkpoint(ctx, name, 422),
      checkVae: (name) => a1111SdVae(ctx, name, 422),
      describe: describeModel,
      styles: req.styles ?? [],
    });
    return {
      images: req.send_images === false ? [] : plot.images,
      parameters: {
        ...echoParameters(body, img2img ? IMG2IMG_DEFAULTS : TXT2IMG_DEFAULTS, img2img),
        ...(plot.first ? usedParameters(plot.first.params, (body ?? {}) as Record<string, unknown>) : {}),
      },
      info: plot.info,
    };
  }
  await checkWorkBudget(ctx, params, uploads, served);
  const accepted = await ctx.queue.submit({
    type,
    params,
    source: "a1111",
    uploads,
    ...(choice ? { model: choice.name } : {}),
  });
  // A client hanging up does not cancel: the job still runs and lands in the history.
  const job = await ctx.queue.whenFinished(accepted.id);
  const images = ctx.store.imagesOf([job.id]).get(job.id) ?? [];
  const parameters = {
    ...echoParameters(body, img2img ? IMG2IMG_DEFAULTS : TXT2IMG_DEFAULTS, img2img),
    ...usedParameters(job.params, (body ?? {}) as Record<string, unknown>),
  };
  if (job.state === "failed") throw new A1111Error(422, job.error ?? "generation failed");
  const sendImages = req.send_images ?? true;
  const encoded =
    job.state === "done" && sendImages
      ? await Promise.all(images.map(async (i) => (await ctx.files.read(i.id)).toString("base64")))
      : [];
  // After the images, each ControlNet unit's control map, as the extension returns them (unless its
  // control_net_no_detectmap setting, or a unit's save_detected_map: false, says not to).
  const noMaps = (req.override_settings?.["control_net_no_detectmap"] ?? options["control_net_no_detectmap"]) === true;
  if (encoded.length > 0 && !noMaps)
    encoded.push(...(await detectedMaps(job, uploads, detectMaps, ctx.upscalers.modelNames())));
  return { images: encoded, parameters, info: a1111Info(job, images, model, req.styles ?? []) };
}

/** The request with its `styles` (saved prompt styles, see prompt-styles.ts) applied to its prompts, as A1111 does. */
function withStyles<R extends A1111Txt2Img>(ctx: ServerContext, req: R): R {
  if (!req.styles?.length) return req;
  try {
    const styled = new PromptStyles(ctx.config.dataDir).apply(req.styles, req.prompt ?? "", req.negative_prompt ?? "");
    return { ...req, prompt: styled.prompt, negative_prompt: styled.negative };
  } catch (e) {
    if (e instanceof InputError) throw new A1111Error(422, `styles: ${e.message}`);
    throw e;
  }
}

async function progress(ctx: ServerContext, skipImage: boolean) {
  const cur = ctx.queue.running;
  const queued = ctx.queue.queuedCount();
  const state = {
    skipped: cur?.skipPending ?? false,
    interrupted: cur?.cancelRequested ?? false,
    stopping_generation: false,
    job: cur ? `task(${cur.id})` : "",
    job_count: cur ? (cur.progress?.batches ?? 1) : 0,
    job_timestamp: cur ? a1111Timestamp(cur.startedAt) : "0",
    job_no: cur?.progress?.batch ?? 0,
    sampling_step: cur?.progress?.step ?? 0,
    sampling_steps: cur?.progress?.steps ?? 0,
    // Not in A1111: how many jobs wait behind this one.
    queued,
  };
  if (!cur) return { progress: 0, eta_relative: 0, state, current_image: null, textinfo: null };
  const p = cur.progress;
  // A1111 starts at 0.01 so the ETA never divides by zero.
  const fraction = Math.min(1, 0.01 + (p ? (p.batch + p.step / Math.max(p.steps, 1)) / Math.max(p.batches, 1) : 0));
  const elapsed = (performance.now() - cur.startedMs) / 1000;
  const eta = elapsed / fraction - elapsed;
  // The newest preview the worker made, as the safety checker allows it (none when withheld): never waited for,
  // so a poll is answered at once while the worker computes (the preview may show a step or so earlier).
  const currentImage = skipImage ? null : (cur.latestPreview?.png?.toString("base64") ?? null);
  return {
    progress: fraction,
    eta_relative: Math.max(0, eta),
    state,
    current_image: currentImage,
    textinfo: p ? `step ${p.step}/${p.steps}` : "waiting to start",
  };
}

/** A checkpoint as A1111 names it; an unknown one is the `status` A1111 answers with, listing the known ones. */
async function a1111Checkpoint(ctx: ServerContext, value: string, status: number): Promise<KnownCheckpoint> {
  try {
    return await knownCheckpoint(ctx, value, "sd_model_checkpoint");
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    throw new A1111Error(status, `Model not found: "${value}"; ${await knownNames(ctx)}`);
  }
}

/** One entry of /sdapi/v1/sd-models; the served model's hash comes from its load when the store has none. */
function sdModel(c: KnownCheckpoint, served: CheckpointDescription) {
  const known =
    c.hash !== undefined ? c : c.path === served.path ? { ...c, hash: served.hash, sha256: served.sha256 } : c;
  return {
    title: checkpointTitle(known) ?? known.name,
    model_name: known.name,
    hash: known.hash ?? null,
    sha256: known.sha256 ?? null,
    filename: known.path,
    config: null,
  };
}

/** Validation as FastAPI reports it: 422 with `detail: [{loc, msg, type}]`. */
function parse<S extends z.ZodType>(schema: S, value: unknown, where: "body" | "query"): z.output<S> {
  const r = schema.safeParse(value ?? (where === "query" ? {} : undefined));
  if (r.success) return r.data;
  throw new A1111ValidationError(
    r.error.issues.map((i) => ({
      loc: [where, ...i.path.map(String)],
      msg: `${fieldName(i.path, where)}: ${i.message}`,
      type: i.code,
    })),
  );
}

class A1111ValidationError extends Error {
  constructor(readonly detail: { loc: string[]; msg: string; type: string }[]) {
    super(detail[0]?.msg ?? "invalid request");
  }
}

/** Errors in A1111's shapes: its `{error, detail, body, errors}` and FastAPI's 422 for validation. */
function a1111ErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (error instanceof A1111ValidationError) {
    void reply.status(422).send({ detail: error.detail });
    return;
  }
  if (error instanceof A1111Error) {
    void reply.status(error.status).send({ error: error.name, detail: error.message, body: "", errors: error.message });
    return;
  }
  const { status, body } = describeError(error, request);
  if (status >= 500) request.log.error(error);
  void reply.status(status).send({ error: body.error, detail: body.message, body: "", errors: body.message });
}

/** GET /sdapi/v1/schedulers' item (A1111's SchedulerItem): which types take rho, and which read the model's table. */
function a1111SchedulerItem(t: ScheduleTypeInfo): {
  name: string;
  label: string;
  aliases: string[] | null;
  default_rho: number;
  need_inner_model: boolean;
} {
  const rho: Partial<Record<ScheduleType, number>> = { karras: 7, polyexponential: 1 };
  const innerModel: readonly ScheduleType[] = ["uniform", "sgm_uniform", "simple", "normal", "ddim", "beta"];
  return {
    name: t.name,
    label: t.label,
    aliases: t.aliases.length ? [...t.aliases] : null,
    default_rho: rho[t.name] ?? -1,
    need_inner_model: innerModel.includes(t.name),
  };
}
