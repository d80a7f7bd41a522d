import { afterAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, postJson, startServer, tempDir } from "./harness.js";

describe.skipIf(!HAVE_REFERENCE)("prompt policy on the server", () => {
  const dir = tempDir("diffuse-policy-");
  afterAll(() => dir.remove());

  it("refuses a matching prompt with 422 and its reason (our API and A1111's), and logs it in the history", async () => {
    const rules = join(dir.path, "rules.json");
    writeFileSync(rules, JSON.stringify([{ regex: "\\bdeep ?fake\\b", reason: "no impersonation" }]));
    const s = await startServer({
      loadOptions: { threads: 1, cacheDir: join(dir.path, "cache"), promptPolicy: rules },
    });
    try {
      const ours = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, {
        prompt: "a deepfake of a politician",
        steps: 2,
      });
      expect(ours.status).toBe(422);
      expect(ours.body.message).toMatch(/no impersonation/);
      const a1111 = await postJson<{ detail?: unknown; message?: string }>(`${s.base}/sdapi/v1/txt2img`, {
        prompt: "deep fake",
        steps: 2,
      });
      expect(a1111.status).toBe(422);
      expect(JSON.stringify(a1111.body)).toMatch(/no impersonation/);
      const history = await getJson<{ jobs: { state: string; error?: string; params: { prompt: string } }[] }>(
        `${s.base}/api/v1/jobs?limit=10`,
      );
      const refused = history.jobs.filter((j) => j.state === "failed" && /no impersonation/.test(j.error ?? ""));
      expect(refused.map((j) => j.params.prompt).sort()).toEqual(["a deepfake of a politician", "deep fake"]);
      const fine = await postJson<{ id: string }>(`${s.base}/api/v1/jobs`, { prompt: "a lighthouse", steps: 2 });
      expect(fine.status).toBe(202);
    } finally {
      await s.close();
    }
  });

  it("refuses a refused word spelled as the tokenizer reads it (entities, full width, control characters, BOM, ANSI escapes) on both APIs", async () => {
    const rules = join(dir.path, "nudity.json");
    writeFileSync(rules, JSON.stringify([{ term: "nude", reason: "no nudity here" }]));
    const s = await startServer({
      loadOptions: { threads: 1, cacheDir: join(dir.path, "cache"), promptPolicy: rules },
    });
    try {
      const spellings = [
        "a n&#117;de person",
        "a &#x6e;ude person",
        "a &amp;#110;ude person",
        "a ｎｕｄｅ person",
        "a nu\u0007de person",
        "a nu\u001b\\[31mde person",
        "a nu\ufeffde person",
        "a nu()de person",
      ];
      for (const prompt of spellings) {
        const ours = await postJson<{ message: string }>(`${s.base}/api/v1/jobs`, { prompt, steps: 2 });
        expect([prompt, ours.status, ours.body.message]).toEqual([
          prompt,
          422,
          expect.stringMatching(/no nudity here/),
        ]);
        const a1111 = await postJson<unknown>(`${s.base}/sdapi/v1/txt2img`, { prompt, steps: 2 });
        expect([prompt, a1111.status, JSON.stringify(a1111.body)]).toEqual([
          prompt,
          422,
          expect.stringMatching(/no nudity here/),
        ]);
      }
      // A NUL is refused at submission whatever the policy says (issue 12 item 14): a validation error on each API
      // (400 on ours, FastAPI's 422 on A1111's).
      expect(
        (await postJson<unknown>(`${s.base}/api/v1/jobs`, { prompt: "a nu\u0000de person", steps: 2 })).status,
      ).toBe(400);
      expect(
        (await postJson<unknown>(`${s.base}/sdapi/v1/txt2img`, { prompt: "a nu\u0000de person", steps: 2 })).status,
      ).toBe(422);
      const history = await getJson<{ jobs: { state: string; error?: string }[] }>(`${s.base}/api/v1/jobs?limit=100`);
      expect(
        history.jobs.filter((j) => j.state === "failed" && /no nudity here/.test(j.error ?? "")).length,
      ).toBeGreaterThanOrEqual(2 * spellings.length);
    } finally {
      await s.close();
    }
  });
});
