import type { FastifyInstance } from "fastify";
import { jsonTooDeep, MAX_JSON_DEPTH } from "../json-depth.js";
import { HttpError } from "./http-errors.js";
import { bigIntegerFields, SEED_FIELDS } from "./json-big-integers.js";

/**
 * The application/json body parser of every route: fastify's own (with its prototype-poisoning checks), behind a
 * nesting bound measured on the text before parsing. JSON.parse copes with any depth, but what walks the value
 * afterwards recurses (storing it, echoing it in A1111's `parameters`, serialising the answer), so a small body
 * nested thousands deep would otherwise be stored or run a whole job and only then fail with a stack overflow.
 * A top-level seed written as an integer beyond 2^53 - 1 is kept exact, as a bigint (json-big-integers.ts).
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  const { onProtoPoisoning, onConstructorPoisoning } = app.initialConfig as {
    onProtoPoisoning?: string;
    onConstructorPoisoning?: string;
  };
  const parse = app.getDefaultJsonParser(
    (onProtoPoisoning ?? "error") as "error" | "remove" | "ignore",
    (onConstructorPoisoning ?? "error") as "error" | "remove" | "ignore",
  );
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (jsonTooDeep(body as string, MAX_JSON_DEPTH)) {
      done(
        new HttpError(
          400,
          "invalid_request",
          `the JSON body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels; no parameter of this API needs more than a few: flatten the value or leave out the field that nests`,
        ),
        undefined,
      );
      return;
    }
    const text = body as string;
    parse(request, text, (error: Error | null, value?: unknown) => {
      // The scan only runs on bodies that name a seed field at all (a fast native search first).
      if (!error && value !== null && typeof value === "object" && !Array.isArray(value) && text.includes('seed"')) {
        for (const [field, exact] of bigIntegerFields(text, SEED_FIELDS))
          (value as Record<string, unknown>)[field] = exact;
      }
      done(error, value);
    });
  });
}
