import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { InputError } from "../errors.js";
import { postprocessUpscale } from "../upscale/postprocess.js";
import type { ServerContext } from "./context.js";
import { readImageUpload } from "./uploads.js";

/**
 * A1111's upscaler routes: `GET /sdapi/v1/upscalers` (its UpscalerItem list), `POST /sdapi/v1/extra-single-image`
 * and `POST /sdapi/v1/extra-batch-images` (ExtrasSingleImageRequest / ExtrasBatchImagesRequest in, {html_info,
 * image} / {html_info, images} out). Upscales run in the server process, one at a time (each holds at most one
 * tile's activations and the result), not through the generation queue: the queue's workers host diffusion
 * pipelines only, and an upscale needs none. Face restoration (GFPGAN, CodeFormer) does not exist here: a request
 * asking for it is refused rather than answered without it.
 */

const ExtrasBase = z.object({
  resize_mode: z.union([z.literal(0), z.literal(1)]).default(0),
  show_extras_results: z.boolean().default(true),
  gfpgan_visibility: z.number().min(0).max(1).default(0),
  codeformer_visibility: z.number().min(0).max(1).default(0),
  codeformer_weight: z.number().min(0).max(1).default(0),
  upscaling_resize: z.number().gt(0).default(2),
  upscaling_resize_w: z.number().int().min(1).default(512),
  upscaling_resize_h: z.number().int().min(1).default(512),
  upscaling_crop: z.boolean().default(true),
  upscaler_1: z.string().default("None"),
  upscaler_2: z.string().default("None"),
  extras_upscaler_2_visibility: z.number().min(0).max(1).default(0),
  upscale_first: z.boolean().default(false),
});

/** Images per batch request: each is decoded, upscaled and encoded in turn, and all are held for the response. */
export const MAX_EXTRAS_BATCH = 32;

export const ExtrasSingleImage = ExtrasBase.extend({ image: z.string().default("") });
export const ExtrasBatchImages = ExtrasBase.extend({
  imageList: z
    .array(z.object({ data: z.string(), name: z.string() }))
    .max(MAX_EXTRAS_BATCH, `at most ${MAX_EXTRAS_BATCH} images per request; send the rest in another`),
});

type Parse = <S extends z.ZodType>(schema: S, value: unknown, where: "body" | "query") => z.output<S>;

export function registerUpscaleRoutes(scope: FastifyInstance, ctx: ServerContext, parse: Parse): void {
  const load = ctx.config.loadOptions ?? {};
  const registry = ctx.upscalers;
  // One upscale at a time: memory stays that of one image, whatever the number of clients.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };

  scope.get("/sdapi/v1/upscalers", async () =>
    registry.list().map((e) => ({
      name: e.name,
      model_name: e.modelName,
      model_path: e.modelPath,
      model_url: null,
      scale: e.scale,
    })),
  );

  const upscaleOne = async (req: z.output<typeof ExtrasBase>, data: string, field: string) => {
    if (req.gfpgan_visibility > 0 || req.codeformer_visibility > 0)
      throw new InputError(
        "gfpgan_visibility / codeformer_visibility: face restoration (GFPGAN, CodeFormer) is not available here; send 0",
      );
    const bytes = await readImageUpload(data, field);
    const upscaler = registry.get(req.upscaler_1);
    const second =
      req.upscaler_2 !== "None" && req.extras_upscaler_2_visibility > 0
        ? { upscaler: registry.get(req.upscaler_2), visibility: req.extras_upscaler_2_visibility }
        : undefined;
    return serially(() =>
      postprocessUpscale(bytes, {
        upscaler,
        ...(second ? { second } : {}),
        ...(req.resize_mode === 1
          ? { width: req.upscaling_resize_w, height: req.upscaling_resize_h, crop: req.upscaling_crop }
          : { scale: req.upscaling_resize }),
        watermark: load.watermark !== false,
        provenance: load.provenance ?? true,
        name: field,
      }),
    );
  };

  scope.post("/sdapi/v1/extra-single-image", async (request) => {
    const req = parse(ExtrasSingleImage, request.body, "body");
    const result = await upscaleOne(req, req.image, "image");
    return {
      html_info: plaintextToHtml(result.infotext),
      image: req.show_extras_results ? result.bytes.toString("base64") : null,
    };
  });

  scope.post("/sdapi/v1/extra-batch-images", async (request) => {
    const req = parse(ExtrasBatchImages, request.body, "body");
    const images: string[] = [];
    let infotext = "";
    for (const [i, file] of req.imageList.entries()) {
      const result = await upscaleOne(req, file.data, `imageList[${i}].data`);
      infotext = result.infotext;
      if (req.show_extras_results) images.push(result.bytes.toString("base64"));
    }
    return { html_info: plaintextToHtml(infotext), images };
  });
}

/** A1111's html_info: the infotext's lines, HTML-escaped, joined by <br> inside one paragraph. */
function plaintextToHtml(text: string): string {
  const escapeHtml = (s: string) =>
    s
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#x27;");
  return `<p>${text.split("\n").map(escapeHtml).join("<br>\n")}</p>`;
}
