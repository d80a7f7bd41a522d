import type { FastifyInstance } from "fastify";
import { A1111Error } from "./a1111-mapping.js";
import type { ServerContext } from "./context.js";
import { findVae, listVaes, SD_VAE_AUTOMATIC, vaeFolders } from "./vae-files.js";

/** GET /sdapi/v1/sd-vae: the VAEs of the model roots' VAE folders, as A1111 lists its models/VAE. */
export function registerA1111VaeRoutes(scope: FastifyInstance, ctx: ServerContext): void {
  scope.get("/sdapi/v1/sd-vae", async () => listVaes(vaeFolders(ctx.config.models)));
}

/**
 * A request's sd_vae (override_settings', else the sd_vae option) as its job records it: undefined for Automatic (the
 * served model's VAE), else the value, once it names a listed VAE or None. An unknown name is A1111's `status`.
 */
export function a1111SdVae(ctx: ServerContext, value: unknown, status: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string")
    throw new A1111Error(422, `sd_vae must be a string: "Automatic", "None" or a model_name from /sdapi/v1/sd-vae`);
  if (!findVae(vaeFolders(ctx.config.models), value).found)
    throw new A1111Error(
      status,
      `VAE not found: "${value}"; use "Automatic", "None" or a model_name that GET /sdapi/v1/sd-vae lists`,
    );
  return value.trim().toLowerCase() === SD_VAE_AUTOMATIC.toLowerCase() ? undefined : value;
}
