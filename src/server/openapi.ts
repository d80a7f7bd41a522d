import type { FastifyInstance } from "fastify";
import { z } from "zod";
import {
  ApiError,
  ImageRef,
  JobCreated,
  JobCreateRequest,
  JobList,
  JobParams,
  JobStatus,
  AvailableModel,
  ModelList,
  SamplerList,
  ServedModelRequest,
  SseEvents,
} from "./api-types.js";

import { registerDocsUi } from "./docs-ui.js";
import { A1111_TAG, a1111OpenApi } from "./openapi-a1111.js";

type Json = Record<string, unknown>;

/** JSON Schema 2020-12 (what OpenAPI 3.1 uses) of a zod schema, without the per-document `$schema` key. */
function schema(s: z.ZodType, io: "input" | "output" = "output"): Json {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, {
    io,
    unrepresentable: "any",
    // A bigint is what the body parser makes of a JSON integer past 2^53 - 1 in a seed field: a JSON integer.
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === "bigint") ctx.jsonSchema.type = "integer";
    },
  }) as Json;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string, description: string) => ({
  description,
  content: { "application/json": { schema: ref(name) } },
});
const error = (description: string) => json("ApiError", description);
const idParam = (what: string) => ({
  name: "id",
  in: "path",
  required: true,
  description: `the ${what}'s id (a UUID)`,
  schema: { type: "string", format: "uuid" },
});

/**
 * The OpenAPI 3.1 document of both APIs: ours (`/api/v1/*`, paths written here) and the AUTOMATIC1111-compatible
 * one (`/sdapi/v1/*`, from the route table in a1111-coverage.ts, see openapi-a1111.ts). Schemas are generated from
 * the zod schemas the server validates with, so the document cannot drift from the code. Served at /api/docs, and
 * as interactive documentation at /docs (docs-ui.ts).
 */
export function openApiDocument(options: { tokenRequired: boolean }): Json {
  const sseEvents = Object.fromEntries(Object.entries(SseEvents).map(([name, s]) => [`SseEvent_${name}`, schema(s)]));
  const a1111 = a1111OpenApi(schema);
  const ours = ourPaths();
  for (const path of Object.values(ours))
    for (const operation of Object.values(path)) (operation as Json)["tags"] = [OUR_TAG];
  return {
    openapi: "3.1.0",
    info: {
      title: "diffuse",
      version: "1",
      description:
        "Stable Diffusion jobs: submit (returns an id at once), follow by polling or server-sent events, cancel, browse the history. " +
        "Errors are JSON {error, message, field?, issues?}; 400 names the bad field, 413 means the body is too large. " +
        "Requests other than GET and HEAD take JSON bodies only (415 otherwise) and are refused from other origins' pages (403). " +
        "The AUTOMATIC1111-compatible API is under /sdapi/v1, with A1111's shapes and error bodies (what differs: docs/a1111-api.md).",
    },
    tags: [
      { name: OUR_TAG, description: "jobs, history, models: /api/v1" },
      { name: A1111_TAG, description: "AUTOMATIC1111's web UI API, for its clients: /sdapi/v1" },
    ],
    ...(options.tokenRequired ? { security: [{ bearer: [] }] } : {}),
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "the server's --token; GET requests may pass ?access_token= instead",
        },
      },
      schemas: {
        JobCreateRequest: schema(JobCreateRequest, "input"),
        JobCreated: schema(JobCreated),
        JobStatus: schema(JobStatus),
        JobParams: schema(JobParams),
        JobList: schema(JobList),
        ImageRef: schema(ImageRef),
        ModelList: schema(ModelList),
        AvailableModel: schema(AvailableModel),
        ServedModelRequest: schema(ServedModelRequest, "input"),
        SamplerList: schema(SamplerList),
        ApiError: schema(ApiError),
        ...sseEvents,
        ...a1111.schemas,
      },
    },
    paths: { ...ours, ...a1111.paths },
  };
}

const OUR_TAG = "diffuse API";

/** The paths of our API (`/api/v1/*`). */
function ourPaths(): Record<string, Record<string, unknown>> {
  return {
    "/api/v1/jobs": {
      post: {
        summary: "Submit a txt2img, img2img or inpaint job",
        description:
          "Answers at once with the job's id and queue position; the job runs when the ones before it are done (FIFO, one at a time).",
        requestBody: { required: true, content: { "application/json": { schema: ref("JobCreateRequest") } } },
        responses: {
          "202": json("JobCreated", "accepted and queued (persisted before this answer)"),
          "400": error(
            "a field is invalid, the JSON nests deeper than 64 levels, or `model` names no known model (the message lists them)",
          ),
          "409": error("`model` names another model on a server with --queue, whose workers load the models"),
          "403": error("a cross-site request (another origin's page)"),
          "413": error("body too large"),
          "415": error("the body is not application/json"),
          "422": error(
            "over the server's per-request work budget (megapixel-steps; see --work-budget) or memory limit (see --max-memory), or refused by the prompt policy",
          ),
          "503": error(
            "the request leaves out width or height and the model, whose native size fills them in, failed to load",
          ),
        },
      },
      get: {
        summary: "Job history, newest first",
        parameters: [
          { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 50 } },
        ],
        responses: { "200": json("JobList", "jobs"), "400": error("bad limit") },
      },
    },
    "/api/v1/jobs/{id}": {
      get: {
        summary: "A job's state, progress and images",
        parameters: [idParam("job")],
        responses: { "200": json("JobStatus", "the job"), "400": error("not an id"), "404": error("no such job") },
      },
      delete: {
        summary: "Cancel a queued or running job",
        description:
          "A running job stops at its next step boundary; the answer comes once it has (202 if that takes longer than 10 s).",
        parameters: [idParam("job")],
        responses: {
          "200": json("JobStatus", "cancelled (or it finished first: see state)"),
          "202": json("JobStatus", "cancel requested, not yet effective"),
          "404": error("no such job"),
          "409": error("already finished"),
        },
      },
    },
    "/api/v1/jobs/{id}/events": {
      get: {
        summary: "Server-sent events of a job",
        description:
          "text/event-stream. Event names and their JSON data: queued {position}, running {started_at}, step {step, steps, batch, batches, preview?, preview_withheld?}, " +
          "done {images}, error {message}, cancelled {message} (schemas SseEvent_*). The current state is sent first; the stream ends after done, " +
          "error or cancelled. Disconnecting does not affect the job.",
        parameters: [idParam("job")],
        responses: {
          "200": {
            description: "the event stream",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          "404": error("no such job"),
        },
      },
    },
    "/api/v1/images/{id}": {
      get: {
        summary: "A generated image: PNG with the A1111 infotext in its `parameters` text chunk",
        parameters: [idParam("image")],
        responses: {
          "200": {
            description: "the PNG",
            content: { "image/png": { schema: { type: "string", format: "binary" } } },
          },
          "404": error("no such image"),
        },
      },
    },
    "/api/v1/models": {
      get: {
        summary: "The served model, and every checkpoint the server can serve",
        description:
          "`models` holds the served model with its defaults; `available` every checkpoint the model store knows (the store, the Hugging Face cache, " +
          "other tools' folders: what `diffuse models` lists) with its state: loaded, loading, failed (with `error`) or unloaded. A job's `model` " +
          "field or PUT /api/v1/models/served chooses among them.",
        parameters: [
          {
            name: "wait",
            in: "query",
            description: "false: answer at once while the served model loads (models is then empty)",
            schema: { type: "string", enum: ["true", "false"], default: "true" },
          },
        ],
        responses: { "200": json("ModelList", "models"), "503": error("the served model failed to load") },
      },
    },
    "/api/v1/models/served": {
      put: {
        summary: "Switch the served model",
        description:
          "New jobs go to the model named at once; it loads in the background while jobs already queued for the old model finish on it. " +
          "GET /api/v1/models follows the load; a model that cannot load is shown failed with its error, and the old one is served again.",
        requestBody: { required: true, content: { "application/json": { schema: ref("ServedModelRequest") } } },
        responses: {
          "202": json("ModelList", "switching: the list as it stands (the new model served, loading)"),
          "400": error("no such model: the message lists the known ones"),
          "409": error("with --queue the workers load the models: this server cannot switch"),
        },
      },
    },
    "/api/v1/samplers": {
      get: {
        summary: "Samplers (our names and A1111 labels)",
        responses: { "200": json("SamplerList", "samplers") },
      },
    },
    "/api/docs": { get: { summary: "This document", responses: { "200": { description: "OpenAPI 3.1 JSON" } } } },
  };
}

export function registerOpenApiRoute(app: FastifyInstance, options: { tokenRequired: boolean }): void {
  const doc = openApiDocument(options);
  app.get("/api/docs", async () => doc);
  app.get("/api/openapi.json", async () => doc);
  registerDocsUi(app, doc);
}
