import type { z } from "zod";
import { A1111_ROUTES, type A1111Route } from "./a1111-coverage.js";

type Json = Record<string, unknown>;

export const A1111_TAG = "AUTOMATIC1111 API";

/** A1111's error bodies: its handler's `{error, detail, body, errors}` and FastAPI's validation 422. */
const ERROR_SCHEMAS: Record<string, Json> = {
  A1111Error: {
    type: "object",
    description: "an error as A1111's API answers it",
    properties: {
      error: { type: "string" },
      detail: { type: "string", description: "what was wrong, and what to do" },
      body: { type: "string" },
      errors: { type: "string" },
    },
    required: ["error", "detail"],
  },
  A1111ValidationError: {
    type: "object",
    description: "a request that does not validate, as FastAPI reports it",
    properties: {
      detail: {
        type: "array",
        items: {
          type: "object",
          properties: {
            loc: { type: "array", items: { type: "string" }, description: 'where: ["body", field, ...]' },
            msg: { type: "string" },
            type: { type: "string" },
          },
        },
      },
    },
    required: ["detail"],
  },
};

const str = { type: "string" };
const num = { type: "number" };
const obj = (properties: Record<string, unknown>, required = Object.keys(properties)) => ({
  type: "object",
  properties,
  required,
});
const nullable = (s: Json) => ({ anyOf: [s, { type: "null" }] });
const generated = obj({
  images: { type: "array", items: str, description: "base64 PNGs" },
  parameters: { type: "object", description: "the request as used, A1111's defaults and the values the job ran with" },
  info: { ...str, description: "a JSON string: A1111's Processed.js() fields" },
});

/** A1111's response models (modules/api/models.py) for the routes whose answers clients parse most. */
const RESPONSE_SCHEMAS: Record<string, Json> = {
  TextToImageResponse: generated,
  ImageToImageResponse: generated,
  ProgressResponse: obj(
    {
      progress: num,
      eta_relative: num,
      state: { type: "object" },
      current_image: nullable(str),
      textinfo: nullable(str),
    },
    ["progress", "eta_relative", "state"],
  ),
  PNGInfoResponse: obj({ info: str, items: { type: "object" }, parameters: { type: "object" } }),
  EmbeddingsResponse: obj({ loaded: { type: "object" }, skipped: { type: "object" } }),
  MemoryResponse: obj({ ram: { type: "object" }, cuda: { type: "object" } }),
  ScriptsList: obj({ txt2img: { type: "array", items: str }, img2img: { type: "array", items: str } }),
  PromptStyleItem: obj({ name: str, prompt: nullable(str), negative_prompt: nullable(str) }),
  SamplerItem: obj({ name: str, aliases: { type: "array", items: str }, options: { type: "object" } }),
  SDModelItem: obj({
    title: str,
    model_name: str,
    hash: nullable(str),
    sha256: nullable(str),
    filename: str,
    config: nullable(str),
  }),
};

/** The schema of a route's answer: A1111's model by name ("X[]" a list of X), or any JSON when none is known. */
function responseSchema(name: string | undefined): Json {
  const list = name?.endsWith("[]");
  const model = list ? name!.slice(0, -2) : name;
  if (model === undefined || RESPONSE_SCHEMAS[model] === undefined) return {};
  const ref = { $ref: `#/components/schemas/A1111_${model}` };
  return list ? { type: "array", items: ref } : ref;
}

/** A schema's name in the document: the route's body, by its path ("A1111_txt2img", "A1111_prompt-styles"). */
const bodyName = (r: A1111Route) => `A1111_${r.path.replace("/sdapi/v1/", "").replaceAll("/", "_")}`;

/**
 * The /sdapi/v1 part of the OpenAPI document, from the route table in a1111-coverage.ts: every route this server
 * provides, its request body's schema generated from the zod schema it is validated with, its note as the
 * description, and A1111's response model named. Routes marked "not provided" are left out.
 */
export function a1111OpenApi(schema: (s: z.ZodType, io: "input" | "output") => Json): {
  paths: Record<string, Json>;
  schemas: Record<string, Json>;
} {
  const paths: Record<string, Json> = {};
  const schemas: Record<string, Json> = {
    ...ERROR_SCHEMAS,
    ...Object.fromEntries(Object.entries(RESPONSE_SCHEMAS).map(([name, s]) => [`A1111_${name}`, s])),
  };
  for (const r of A1111_ROUTES) {
    if (r.status === "not provided") continue;
    if (r.body) schemas[bodyName(r)] = schema(r.body, "input");
    const operation: Json = {
      tags: [A1111_TAG],
      summary: `${r.path.replace("/sdapi/v1/", "")} (${r.status})`,
      description: r.note,
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: { $ref: `#/components/schemas/${bodyName(r)}` } } },
            },
          }
        : {}),
      responses: {
        "200": {
          description: r.response ? `A1111's ${r.response}` : "as A1111 answers",
          content: { "application/json": { schema: responseSchema(r.response) } },
        },
        ...(r.body
          ? {
              "422": {
                description: "a field is invalid",
                content: { "application/json": { schema: { $ref: "#/components/schemas/A1111ValidationError" } } },
              },
            }
          : {}),
        default: {
          description: "an error, as A1111 reports it",
          content: { "application/json": { schema: { $ref: "#/components/schemas/A1111Error" } } },
        },
      },
    };
    paths[r.path] = { ...paths[r.path], [r.method.toLowerCase()]: operation };
  }
  return { paths, schemas };
}
