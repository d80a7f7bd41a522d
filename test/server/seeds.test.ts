import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getPngText } from "../../src/image/png-text.js";
import type { ApiError, JobCreated, JobStatus } from "../../src/server/api-types.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { getJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

const MAX = "18446744073709551615";

/** POSTs JSON text as written (a JSON.stringify of a JS value could not hold an integer beyond 2^53). */
async function postText(url: string, text: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: text });
  return { status: r.status, text: await r.text() };
}

describe.skipIf(!HAVE_REFERENCE)("seeds from 0 to 2^64-1 over HTTP, on both APIs", () => {
  const cache = tempDir("diffuse-cache-");
  const data = tempDir("diffuse-seeds-");
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path, dataDir: data.path });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
      data.remove();
    }
  });

  async function job(body: string): Promise<JobStatus> {
    const r = await postText(`${s.base}/api/v1/jobs`, body);
    expect(r.status, r.text).toBe(202);
    return waitForJob(s.base, (JSON.parse(r.text) as JobCreated).id);
  }

  it("our API takes 2^64-1 as a string or as a JSON integer, runs it exactly, and answers it as a string; it survives a restart", async () => {
    for (const seed of [`"${MAX}"`, MAX]) {
      const done = await job(`{"prompt": "a red square", "steps": 2, "seed": ${seed}}`);
      expect(done.state).toBe("done");
      expect(done.params.seed).toBe(MAX);
      expect(done.images[0]!.seed).toBe(MAX);
      expect(done.images[0]!.infotext).toMatch(new RegExp(`, Seed: ${MAX}, `));
      const png = new Uint8Array(await (await fetch(`${s.base}${done.images[0]!.url}`)).arrayBuffer());
      expect(getPngText(png, "parameters")).toMatch(new RegExp(`, Seed: ${MAX}, `));
    }
    // Seeds up to 2^53-1 stay numbers, as before.
    const small = await job('{"prompt": "a red square", "steps": 1, "seed": 4294967301}');
    expect(small.params.seed).toBe(4294967301);
    expect(small.images[0]!.seed).toBe(4294967301);

    // The history is read back from SQLite, whose integers are signed 64-bit, after a restart.
    const before = await getJson<{ jobs: JobStatus[] }>(`${s.base}/api/v1/jobs?limit=3`);
    await s.close();
    s = await startServer({ cacheDir: cache.path, dataDir: data.path });
    const after = await getJson<{ jobs: JobStatus[] }>(`${s.base}/api/v1/jobs?limit=3`);
    expect(after.jobs.map((j) => j.images.map((i) => i.seed))).toEqual([[4294967301], [MAX], [MAX]]);
    expect(after.jobs.map((j) => j.params.seed)).toEqual(before.jobs.map((j) => j.params.seed));
  });

  it("our API refuses with 400 a number that has lost digits, a seed past 2^64-1 and a batch that would pass it, saying what to send", async () => {
    const cases: [string, RegExp][] = [
      [
        '{"prompt": "x", "seed": 1.8446744073709552e19}',
        /seed: 18446744073709552000 is not exact.*as a decimal string \(e\.g\. "18446744073709551615"\)/,
      ],
      [`{"prompt": "x", "seed": ${MAX}.0}`, /seed: 18446744073709552000 is not exact/],
      [
        '{"prompt": "x", "seed": "18446744073709551616"}',
        /seed: 18446744073709551616 is out of range: use an integer from 0 to 18446744073709551615, or -1/,
      ],
      ['{"prompt": "x", "seed": "1e5"}', /seed: "1e5" is not an integer/],
      [
        `{"prompt": "x", "seed": "${MAX}", "batch_size": 2, "width": 64, "height": 64}`,
        /needs seeds up to 18446744073709551616.*use a seed up to 18446744073709551614/,
      ],
    ];
    for (const [body, message] of cases) {
      const r = await postText(`${s.base}/api/v1/jobs`, body);
      expect(r.status, body).toBe(400);
      expect((JSON.parse(r.text) as ApiError).message, body).toMatch(message);
    }
  });

  it("A1111's txt2img takes 2^64-1 as a JSON integer or a string and answers with exact JSON integers, as A1111 does", async () => {
    const r = await postText(
      `${s.base}/sdapi/v1/txt2img`,
      `{"prompt": "a red square", "steps": 1, "width": 64, "height": 64, "batch_size": 2, "seed": 18446744073709551614, "subseed": ${MAX}}`,
    );
    expect(r.status, r.text).toBe(200);
    // The echo and the info string hold the integers as sent: exact for a client that reads big integers (Python).
    expect(r.text).toContain(`"seed":18446744073709551614,`);
    expect(r.text).toContain(`"subseed":${MAX}`);
    const body = JSON.parse(r.text) as { images: string[]; info: string };
    expect(body.info).toContain(`"seed":18446744073709551614,"all_seeds":[18446744073709551614,${MAX}]`);
    const infotexts = (JSON.parse(body.info) as { infotexts: string[] }).infotexts;
    expect(infotexts[1]).toMatch(new RegExp(`, Seed: ${MAX}, `));

    const pngInfo = await postText(`${s.base}/sdapi/v1/png-info`, JSON.stringify({ image: body.images[1] }));
    expect((JSON.parse(pngInfo.text) as { parameters: Record<string, string> }).parameters["Seed"]).toBe(MAX);

    const asString = await postText(
      `${s.base}/sdapi/v1/txt2img`,
      `{"prompt": "x", "steps": 1, "width": 64, "height": 64, "seed": "4294967301"}`,
    );
    expect(asString.status).toBe(200);
    expect((JSON.parse(asString.text) as { info: string }).info).toContain('"seed":4294967301,');
  });

  it("A1111's options take a top-level seed-named key with a big integer like any other value (stored, not a crash)", async () => {
    const r = await postText(`${s.base}/sdapi/v1/options`, `{"seed": ${MAX}}`);
    expect(r.status, r.text).toBe(200);
    // Options are free-form: read back as JSON reads them (no option of ours is a seed).
    const options = (await (await fetch(`${s.base}/sdapi/v1/options`)).json()) as { seed: unknown };
    expect(options.seed).toBeGreaterThan(1.8e19);
  });

  it("A1111's txt2img refuses with 422 a number that has lost digits and a seed past 2^64-1", async () => {
    for (const seed of ["1.8446744073709552e19", '"18446744073709551616"', "-2"]) {
      const r = await postText(`${s.base}/sdapi/v1/txt2img`, `{"prompt": "x", "steps": 1, "seed": ${seed}}`);
      expect(r.status, seed).toBe(422);
      expect((JSON.parse(r.text) as { detail: { loc: string[]; msg: string }[] }).detail[0]!.loc).toEqual([
        "body",
        "seed",
      ]);
    }
  });
});
