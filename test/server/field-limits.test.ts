/**
 * Every limit of the request schemas of both APIs, table-driven: a value just past each bound (and of the wrong
 * type) gets a 4xx that names the field, ours as `field` + a message starting with it, A1111's as FastAPI's 422
 * with `detail[].loc`. The value at the bound passes validation: the server then refuses it for its work
 * budget (set tiny here, so nothing is ever queued) or for the model it does not have, never for the field.
 * Bad bodies (none, not an object, not JSON, too deep, too large) get a 4xx that says what was wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../../src/json-depth.js";
import type { ApiError } from "../../src/server/api-types.js";
import { pngBase64, startServer, tempDir, type TestServer } from "./harness.js";

type Row = [field: string, over: unknown[], atLimit: unknown[]];

const long = (n: number) => "x".repeat(n);

/** Our POST /api/v1/jobs: [field, values past the limit or of the wrong type, values at the limit]. */
const OURS: Row[] = [
  ["prompt", [long(20_001), 5, null, "a\0b", ["x"]], [long(20_000), ""]],
  ["negative_prompt", [long(20_001), 5, "a\0b"], [long(20_000)]],
  ["steps", [0, 151, -1, 1.5, "20", null], [1, 150]],
  ["cfg_scale", [-0.01, 30.01, "7", null], [0, 30]],
  // Past the largest seed whether it is 2^32 - 1 or PyTorch's 2^64 - 1 (issue 13 widens it to that).
  ["seed", [-2, 1.5, "abc", "18446744073709551616", 2 ** 64, 1e300], [-1, 0, 2 ** 32 - 1]],
  ["sampler_name", [long(101), "no-such-sampler", 5], ["euler-a", "DPM++ 2M Karras"]],
  ["width", [0, 7, 65, 2056, 4096, "512", 512.5], [8, 2048]],
  ["height", [0, 7, 65, 2056, 4096, "512"], [8, 2048]],
  ["batch_size", [0, 9, 1.5], [1, 8]],
  ["n_iter", [0, 17], [1, 16]],
  ["denoising_strength", [-0.01, 1.01, "0.5"], [0, 1]],
  ["clip_skip", [0, 13, 2.5], [1, 12]],
  ["type", ["upscale", 5, ""], ["txt2img"]],
];

/** A1111's /sdapi/v1/txt2img (and img2img, which extends it). */
const A1111: Row[] = [
  ["prompt", [long(20_001), 5, "a\0b"], [long(20_000), null]],
  ["negative_prompt", [long(20_001), 5, "a\0b"], [long(20_000)]],
  ["styles", ["portrait", [5]], [[], null]],
  ["seed", [-2, 1.5, "abc", "18446744073709551616", 2 ** 64], [-1, 2 ** 32 - 1]],
  ["sampler_name", [long(101), 5], ["Euler a"]],
  ["sampler_index", [long(101), 5], ["Euler"]],
  ["scheduler", [long(101), 5], ["Karras"]],
  ["batch_size", [0, 9], [1, 8]],
  ["n_iter", [0, 17], [1, 16]],
  ["steps", [0, 151, "many"], [1, 150]],
  ["cfg_scale", [-0.01, 30.01], [0, 30]],
  ["width", [7, 2049, "512"], [8, 2048]],
  ["height", [7, 2049], [8, 2048]],
  ["denoising_strength", [-0.01, 1.01], [0, 1]],
  ["override_settings", ["x", [1], 5], [{}]],
  ["send_images", ["yes", 1], [true]],
  ["save_images", ["no", 0], [false]],
];

const A1111_IMG2IMG: Row[] = [
  ["init_images", [[], "x", [5]], []],
  ["mask", [5, ["x"]], []],
  ["mask_blur", [-1, 64.5], [0, 64]],
  ["mask_blur_x", [-1, 65], [64]],
  ["mask_blur_y", [-1, 65], [64]],
  ["inpainting_fill", [-1, 4, 1.5], [0, 3]],
  ["inpainting_mask_invert", [-1, 2], [0, 1]],
  ["resize_mode", [-1, 4], [0, 3]],
  ["include_init_images", ["yes"], [true]],
];

describe("request limits of both APIs", () => {
  let s: TestServer;
  let png: string;
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    // A budget no request meets: a body that passes validation is refused for its work and never queued.
    s = await startServer({ workBudget: 1e-9, bodyLimit: 64 * 1024 }, { modelPath: notAModel.path });
    png = await pngBase64(64, 64, [10, 20, 30]);
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  const post = async (path: string, body: string) => {
    const r = await fetch(`${s.base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };

  it("our API: each value past a limit gets 400 naming the field; the value at the limit passes validation", async () => {
    const base = { prompt: "x", width: 64, height: 64 };
    const wrong: string[] = [];
    for (const [field, over, atLimit] of OURS) {
      for (const value of over) {
        const r = await post("/api/v1/jobs", JSON.stringify({ ...base, [field]: value }));
        const e = r.json as ApiError;
        if (r.status !== 400 || e.field !== field || !e.message.startsWith(`${field}:`))
          wrong.push(
            `${field}=${JSON.stringify(value).slice(0, 30)} -> ${r.status} ${JSON.stringify(e).slice(0, 120)}`,
          );
      }
      for (const value of atLimit) {
        const r = await post("/api/v1/jobs", JSON.stringify({ ...base, [field]: value }));
        if (r.status === 400 && (r.json as ApiError).field === field)
          wrong.push(
            `${field}=${JSON.stringify(value).slice(0, 30)} (at the limit) -> refused: ${(r.json as ApiError).message}`,
          );
        else if (r.status !== 422)
          wrong.push(
            `${field}=${JSON.stringify(value).slice(0, 30)} (at the limit) -> ${r.status} (expected the work budget's 422)`,
          );
      }
    }
    expect(wrong).toEqual([]);
  });

  it("our API: uploads that are not base64 images, and uploads on the wrong job type, name their field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ type: "img2img" }, "init_image"],
      [{ type: "img2img", init_image: "" }, "init_image"],
      [{ type: "img2img", init_image: "not base64!" }, "init_image"],
      [{ type: "img2img", init_image: 5 }, "init_image"],
      [{ type: "img2img", init_image: "aGVsbG8=" }, "init_image"],
      [{ type: "inpaint", init_image: png }, "mask"],
      [{ type: "inpaint", init_image: png, mask: "" }, "mask"],
      [{ type: "inpaint", init_image: png, mask: "aGVsbG8=" }, "mask"],
      [{ type: "txt2img", init_image: png }, "type"],
    ];
    for (const [extra, field] of cases) {
      const r = await post("/api/v1/jobs", JSON.stringify({ prompt: "x", width: 64, height: 64, ...extra }));
      expect([r.status, (r.json as ApiError).field], JSON.stringify(extra).slice(0, 60)).toEqual([400, field]);
      expect((r.json as ApiError).message).toMatch(new RegExp(`^${field}:|${field}`));
    }
    const ok = await post(
      "/api/v1/jobs",
      JSON.stringify({
        prompt: "x",
        width: 64,
        height: 64,
        type: "inpaint",
        init_image: png,
        mask: `data:image/png;base64,${png}`,
      }),
    );
    expect(ok.status).toBe(422); // valid: refused for the work budget only
  });

  it("A1111: each value past a limit gets FastAPI's 422 with the field in detail[].loc and msg; at the limit it passes validation", async () => {
    const wrong: string[] = [];
    const check = async (path: string, rows: Row[], base: Record<string, unknown>) => {
      for (const [field, over, atLimit] of rows) {
        for (const value of over) {
          const r = await post(path, JSON.stringify({ ...base, [field]: value }));
          const detail = (r.json["detail"] ?? []) as { loc: string[]; msg: string }[];
          const named = detail.some((d) => d.loc[0] === "body" && d.loc[1] === field && d.msg.startsWith(field));
          if (r.status !== 422 || !named)
            wrong.push(
              `${path} ${field}=${JSON.stringify(value).slice(0, 30)} -> ${r.status} ${JSON.stringify(r.json).slice(0, 120)}`,
            );
        }
        for (const value of atLimit) {
          const r = await post(path, JSON.stringify({ ...base, [field]: value }));
          const detail = r.json["detail"];
          if (r.status === 422 && Array.isArray(detail))
            wrong.push(
              `${path} ${field}=${JSON.stringify(value).slice(0, 30)} (at the limit) -> 422 ${JSON.stringify(detail).slice(0, 120)}`,
            );
        }
      }
    };
    await check("/sdapi/v1/txt2img", A1111, { prompt: "x" });
    await check("/sdapi/v1/img2img", [...A1111, ...A1111_IMG2IMG], { prompt: "x", init_images: [png] });
    expect(wrong).toEqual([]);
  });

  // (POST /sdapi/v1/options checks its values against the model, which this server has none of: see a1111.test.ts.)
  it("the other inputs: png-info's image, progress' query, the history's limit", async () => {
    const info = await post("/sdapi/v1/png-info", JSON.stringify({ image: "" }));
    expect(info.status).toBe(422);
    expect((info.json["detail"] as { loc: string[] }[])[0]!.loc).toEqual(["body", "image"]);
    const progress = await fetch(`${s.base}/sdapi/v1/progress?skip_current_image=perhaps`);
    expect(progress.status).toBe(422);
    expect(((await progress.json()) as { detail: { loc: string[] }[] }).detail[0]!.loc).toEqual([
      "query",
      "skip_current_image",
    ]);
    const list = await fetch(`${s.base}/api/v1/jobs?limit=501`);
    expect(list.status).toBe(400);
    expect(((await list.json()) as ApiError).field).toBe("limit");
  });

  it("bad bodies on both APIs: none, not an object, not JSON, nested too deep, too large", async () => {
    const deep = `{"prompt":"x","extra":${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}}`;
    const cases: [string, string | undefined, number, RegExp][] = [
      ["/api/v1/jobs", undefined, 400, /no JSON body/],
      ["/api/v1/jobs", "[]", 400, /^body: /],
      ["/api/v1/jobs", "null", 400, /body/],
      ["/api/v1/jobs", '"prompt"', 400, /^body: /],
      ["/api/v1/jobs", '{"prompt": "x",', 400, /JSON/],
      ["/api/v1/jobs", '{"prompt": "x", "__proto__": {"admin": true}}', 400, /JSON/],
      ["/api/v1/jobs", deep, 400, new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`)],
      ["/api/v1/jobs", JSON.stringify({ prompt: long(70_000) }), 413, /larger than/],
      ["/sdapi/v1/txt2img", undefined, 422, /body/],
      ["/sdapi/v1/txt2img", "[]", 422, /body/],
      ["/sdapi/v1/txt2img", '{"prompt": ', 400, /JSON/],
      ["/sdapi/v1/txt2img", deep, 400, new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`)],
      ["/sdapi/v1/txt2img", JSON.stringify({ prompt: long(70_000) }), 413, /larger than/],
      ["/sdapi/v1/options", "[1, 2]", 422, /body/],
    ];
    for (const [path, body, status, message] of cases) {
      const r = await fetch(
        `${s.base}${path}`,
        body === undefined
          ? { method: "POST" }
          : { method: "POST", headers: { "content-type": "application/json" }, body },
      );
      const text = await r.text();
      expect(r.status, `${path} ${String(body).slice(0, 40)}: ${text.slice(0, 200)}`).toBe(status);
      const json = JSON.parse(text) as Record<string, unknown>;
      const said =
        typeof json["message"] === "string"
          ? json["message"]
          : typeof json["detail"] === "string"
            ? json["detail"]
            : JSON.stringify(json["detail"]);
      expect(said, `${path} ${String(body).slice(0, 40)}`).toMatch(message);
    }
  });
});
