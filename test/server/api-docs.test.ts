import { describe, expect, it } from "vitest";
import { A1111_ROUTES } from "../../src/server/a1111-coverage.js";
import { openApiDocument } from "../../src/server/openapi.js";

type Operation = {
  tags: string[];
  description?: string;
  requestBody?: { content: { "application/json": { schema: { $ref: string } } } };
  responses: Record<string, unknown>;
};
type Doc = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
  tags: { name: string }[];
};

describe("the OpenAPI document describes both APIs", () => {
  const doc = openApiDocument({ tokenRequired: false }) as unknown as Doc;

  it("has every /sdapi/v1 route the server provides, and none it does not", () => {
    for (const r of A1111_ROUTES) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase()];
      if (r.status === "not provided") expect(op, `${r.method} ${r.path}`).toBeUndefined();
      else {
        expect(op, `${r.method} ${r.path}`).toBeDefined();
        expect(op!.tags).toEqual(["AUTOMATIC1111 API"]);
        expect(op!.description).toBe(r.note);
      }
    }
    expect(doc.paths["/api/v1/jobs"]!["post"]!.tags).toEqual(["diffuse API"]);
    expect(doc.tags.map((t) => t.name)).toEqual(["diffuse API", "AUTOMATIC1111 API"]);
  });

  it("takes txt2img's and img2img's request bodies from the zod schemas the server validates with", () => {
    const txt2img = doc.paths["/sdapi/v1/txt2img"]!["post"]!;
    const ref = txt2img.requestBody!.content["application/json"].schema.$ref;
    const body = doc.components.schemas[ref.replace("#/components/schemas/", "")]!;
    expect(Object.keys(body.properties!)).toEqual(
      expect.arrayContaining(["prompt", "negative_prompt", "seed", "sampler_name", "steps", "cfg_scale", "width"]),
    );
    const img2img = doc.paths["/sdapi/v1/img2img"]!["post"]!.requestBody!.content["application/json"].schema.$ref;
    expect(Object.keys(doc.components.schemas[img2img.replace("#/components/schemas/", "")]!.properties!)).toEqual(
      expect.arrayContaining(["init_images", "mask", "denoising_strength"]),
    );
    expect(txt2img.responses["422"]).toBeDefined();
  });
});
