/**
 * Prompts end up in each image's PNG text (the A1111 infotext in its `parameters` chunk), and PNG text cannot
 * hold a NUL. Such a prompt must be refused at submission, naming the field, on both APIs; not accepted, run for
 * every step and failed at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getPngText } from "../../src/image/png-text.js";
import { postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

interface JobCount {
  jobs: unknown[];
}

describe("characters PNG text cannot hold, refused at submission", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path });
  });
  afterAll(async () => {
    await s?.close();
    cache.remove();
  });

  const jobCount = async () =>
    ((await (await fetch(`${s.base}/api/v1/jobs?limit=500`)).json()) as JobCount).jobs.length;
  const small = { steps: 1, width: 64, height: 64 };

  it("answers 400 naming the field on our API, and queues nothing", async () => {
    const before = await jobCount();
    for (const field of ["prompt", "negative_prompt"] as const) {
      for (const text of ["a\u0000b", "\u0000", "tail\u0000"]) {
        const body = { prompt: "a house", ...small, [field]: text };
        const r = await postJson<{ error: string; message: string; field: string }>(`${s.base}/api/v1/jobs`, body);
        expect(r.status, `${field} ${JSON.stringify(text)}`).toBe(400);
        expect(r.body.field).toBe(field);
        expect(r.body.message).toMatch(new RegExp(`^${field}: .*NUL`));
      }
    }
    expect(await jobCount()).toBe(before);
  });

  it("answers 422 naming the field on A1111's txt2img and img2img, and queues nothing", async () => {
    const before = await jobCount();
    for (const route of ["txt2img", "img2img"]) {
      for (const field of ["prompt", "negative_prompt"]) {
        const r = await postJson<{ detail: { loc: string[]; msg: string }[] }>(`${s.base}/sdapi/v1/${route}`, {
          prompt: "a house",
          ...small,
          [field]: "a\u0000b",
        });
        expect(r.status, `${route} ${field}`).toBe(422);
        expect(r.body.detail[0]!.loc).toEqual(["body", field]);
        expect(r.body.detail[0]!.msg).toContain("NUL");
      }
    }
    expect(await jobCount()).toBe(before);
  });

  it("still takes every other character, control characters and non-Latin-1 text included, and writes it to the PNG", async () => {
    const prompt = "tab\there, bell\u0007, esc\u001b[1m, é, 猫, 🐈, line\nbreak";
    const r = await postJson<{ id: string }>(`${s.base}/api/v1/jobs`, { prompt, negative_prompt: "ü\u0001", ...small });
    expect(r.status).toBe(202);
    const done = await waitForJob(s.base, r.body.id);
    expect(done.state).toBe("done");
    const png = new Uint8Array(await (await fetch(`${s.base}${done.images[0]!.url}`)).arrayBuffer());
    expect(getPngText(png, "parameters")).toContain(prompt);
  });
});
