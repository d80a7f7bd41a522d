import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import { DiffuseError, InputError } from "../errors.js";
import type { ApiError } from "./api-types.js";
import { StorageFullError } from "./data-errors.js";

/** An error with the HTTP status and body it should produce. Route code throws these; the error handler answers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly issues?: { field: string; message: string }[],
  ) {
    super(message);
    this.name = "HttpError";
  }

  body(): ApiError {
    return {
      error: this.code,
      message: this.message,
      ...(this.field === undefined ? {} : { field: this.field }),
      ...(this.issues === undefined ? {} : { issues: this.issues }),
    };
  }
}

export function notFound(what: string): HttpError {
  return new HttpError(404, "not_found", what);
}

/** "steps", "init_images.0", or the part of the request when the whole of it is wrong. */
export function fieldName(path: readonly PropertyKey[], where: string): string {
  return path.length === 0 ? where : path.map(String).join(".");
}

/** Validates with zod; a failure becomes 400 naming the first bad field and listing every issue. */
export function parseRequest<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: "body" | "query" | "params",
): z.output<S> {
  const r = schema.safeParse(value ?? (where === "body" ? undefined : {}));
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ field: fieldName(i.path, where), message: i.message }));
  const first = issues[0]!;
  const message =
    value === undefined && where === "body"
      ? "the request has no JSON body: send Content-Type: application/json with the parameters"
      : `${first.field}: ${first.message}`;
  throw new HttpError(400, "invalid_request", message, first.field, issues);
}

/** Translates every error into an ApiError body: ours, fastify's own (body too large, bad JSON), and bugs. */
export function apiErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = describeError(error, request);
  if (status >= 500) request.log.error(error);
  void reply.status(status).send(body);
}

export function describeError(error: unknown, request: FastifyRequest): { status: number; body: ApiError } {
  if (error instanceof HttpError) return { status: error.status, body: error.body() };
  if (error instanceof InputError) return { status: 400, body: { error: "invalid_request", message: error.message } };
  if (error instanceof StorageFullError)
    return { status: 507, body: { error: "insufficient_storage", message: error.message } };
  if (error instanceof DiffuseError) return { status: 422, body: { error: "unprocessable", message: error.message } };
  const fe = error as Partial<FastifyError>;
  if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE" || fe.statusCode === 413) {
    const limit = request.routeOptions?.bodyLimit ?? request.server.initialConfig.bodyLimit ?? 0;
    return {
      status: 413,
      body: {
        error: "payload_too_large",
        message: `the request body is larger than ${(limit / 1024 / 1024).toFixed(0)} MiB: send smaller images (PNG or JPEG at the generation size), or restart the server with a larger limit`,
      },
    };
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: fe.code ?? "bad_request", message: fe.message ?? "bad request" } };
  }
  return {
    status: 500,
    body: {
      error: "internal",
      message: `internal error: ${(error as Error)?.message ?? String(error)}; see the server log`,
    },
  };
}
