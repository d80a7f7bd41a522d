import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { PREPROCESSORS, findPreprocessor } from "../control/preprocessors.js";
import type { Preprocessor, ThresholdSpec } from "../control/preprocessor.js";
import { InputError } from "../errors.js";
import { decodeImage, encodePng, screenImage } from "../image/codec.js";
import { MAX_CONTROL_UNITS } from "../pipeline/params.js";
import type { ServerContext } from "./context.js";
import { listControlNets } from "./controlnet-models.js";
import { describeError, fieldName } from "./http-errors.js";
import { readImageUpload } from "./uploads.js";

/** The API version the extension reports (its `/controlnet/version`); clients check it is at least 2. */
const API_VERSION = 2;

/** The extension's default preprocessor resolution (its "Preprocessor Resolution" slider). */
const PROCESSOR_RES = { label: "Preprocessor Resolution", min: 64, max: 2048, default: 512 } as const;

const DetectBody = z
  .object({
    controlnet_module: z.string().default("none"),
    controlnet_input_images: z.array(z.string()).default([]),
    controlnet_processor_res: z.number().default(-1),
    controlnet_threshold_a: z.number().default(-1),
    controlnet_threshold_b: z.number().default(-1),
  })
  .passthrough();

/**
 * The routes of AUTOMATIC1111's ControlNet extension (sd-webui-controlnet's scripts/api.py), answered the same way so
 * its clients work unchanged: the API version and unit count, the ControlNets of `serve --controlnet-dir`
 * (`/controlnet/model_list`, titles "name [hash]"), the preprocessors with their sliders (`/controlnet/module_list`),
 * and a preprocessor run on uploaded images (`/controlnet/detect`). Errors come as FastAPI's `{detail}`; an unknown
 * module is a 422 naming the valid ones.
 */
export function registerControlNetRoutes(app: FastifyInstance, ctx: ServerContext): void {
  void app.register(async (scope) => {
    scope.setErrorHandler(detailErrors);
    scope.get("/controlnet/version", async () => ({ version: API_VERSION }));
    scope.get("/controlnet/settings", async () => ({ control_net_unit_count: MAX_CONTROL_UNITS }));
    scope.get("/controlnet/model_list", async () => ({
      model_list: listControlNets(ctx.config.controlnetDirs ?? []).map((c) => c.title),
    }));
    scope.get("/controlnet/module_list", async (request) => {
      const aliases = (request.query as Record<string, unknown> | undefined)?.["alias_names"] === "true";
      const names = PREPROCESSORS.flatMap((p) => (aliases ? [p.name, ...(p.aliases ?? [])] : [p.name]));
      return {
        module_list: names,
        module_detail: Object.fromEntries(names.map((n) => [n, moduleDetail(findPreprocessor(n))])),
      };
    });
    scope.post("/controlnet/detect", async (request) => detect(request.body));
  });
}

/** What the extension tells a client about a module: whether it needs a model, and its sliders. */
function moduleDetail(p: Preprocessor): { model_free: boolean; sliders: Record<string, unknown>[] } {
  const slider = (s: ThresholdSpec | typeof PROCESSOR_RES) => ({
    name: s.label,
    value: s.default,
    min: s.min,
    max: s.max,
  });
  const thresholds = [p.thresholdA, p.thresholdB].filter((s): s is ThresholdSpec => s !== undefined);
  return { model_free: false, sliders: p.name === "none" ? [] : [slider(PROCESSOR_RES), ...thresholds.map(slider)] };
}

async function detect(body: unknown): Promise<{ info: string; images: string[] }> {
  const parsed = DetectBody.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DetailError(422, `${fieldName(issue.path, "body")}: ${issue.message}`);
  }
  const b = parsed.data;
  let pre: Preprocessor;
  try {
    pre = findPreprocessor(b.controlnet_module);
  } catch {
    throw new DetailError(
      422,
      `Module not available: ${JSON.stringify(b.controlnet_module)}; the modules are ${PREPROCESSORS.map((p) => p.name).join(", ")} (GET /controlnet/module_list)`,
    );
  }
  if (b.controlnet_input_images.length === 0)
    throw new DetailError(422, "No image selected: send controlnet_input_images (base64 images)");
  // Out-of-range sliders take the module's defaults, as the extension's bound check does.
  const within = (v: number, s: { min: number; max: number; default: number } | undefined) =>
    s === undefined ? 0 : v >= s.min && v <= s.max ? v : s.default;
  const res = within(b.controlnet_processor_res, PROCESSOR_RES);
  const images: string[] = [];
  for (const [i, b64] of b.controlnet_input_images.entries()) {
    const field = `controlnet_input_images.${i}`;
    const bytes = await readImageUpload(b64, field);
    const { width, height } = await screenImage(bytes, { name: `the uploaded ${field}` });
    // The shorter side brought to the processor resolution, as the extension does before preprocessing.
    const k = pre.name === "none" ? 1 : res / Math.min(width, height);
    const image = await decodeImage(bytes, {
      name: `the uploaded ${field}`,
      width: Math.max(1, Math.round(width * k)),
      height: Math.max(1, Math.round(height * k)),
    });
    const map = pre.run(image, {
      thresholdA: within(b.controlnet_threshold_a, pre.thresholdA),
      thresholdB: within(b.controlnet_threshold_b, pre.thresholdB),
    });
    images.push((await encodePng(map)).toString("base64"));
  }
  return { info: "Success", images };
}

class DetailError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** FastAPI's error shape, `{detail}`, which the extension's clients read. */
function detailErrors(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (error instanceof DetailError) {
    void reply.status(error.status).send({ detail: error.message });
    return;
  }
  if (error instanceof InputError) {
    void reply.status(422).send({ detail: error.message });
    return;
  }
  const { status, body } = describeError(error, request);
  if (status >= 500) request.log.error(error);
  void reply.status(status).send({ detail: body.message });
}
