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
  const schemas: Record<string, Json> = { ...ERROR_SCHEMAS };
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
          content: { "application/json": { schema: {} } },
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
