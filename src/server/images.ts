import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { Id } from "./api-types.js";
import type { ServerContext } from "./context.js";
import { notFound, parseRequest } from "./http-errors.js";

const IdParams = z.object({ id: Id });

export const imageUrl = (id: string) => `/api/v1/images/${id}`;

/**
 * Generated images as PNG with the infotext in their `parameters` chunk. The id is validated against the id
 * pattern and then looked up in the database: a path parameter never reaches the file system as given.
 */
export function registerImageRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/api/v1/images/:id", async (request, reply) => {
    const { id } = parseRequest(IdParams, request.params, "params");
    if (!ctx.store.image(id)) throw notFound(`no image ${id}`);
    let png: Buffer;
    try {
      png = await ctx.files.read(id);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw notFound(
          `image ${id} is recorded but its file is missing from ${ctx.files.dir}; it was deleted or the data folder was copied without images/`,
        );
      }
      throw e;
    }
    // Ids are never reused, so the bytes behind a URL never change.
    return reply
      .type("image/png")
      .header("cache-control", "private, max-age=31536000, immutable")
      .header("content-disposition", `inline; filename="${id}.png"`)
      .send(png);
  });
}
