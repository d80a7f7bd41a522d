/**
 * With --log, every request is logged with its URL; a token passed as `?access_token=` (how EventSource and a
 * first page load authenticate) must not be written to the log in the clear, nor an Authorization header.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest, startServer, tempDir, type TestServer } from "./harness.js";

const TOKEN = "s3cret-token-for-log-tests";
const WRONG = "wrong-but-maybe-another-secret";

describe("secrets in the request log", () => {
  let s: TestServer;
  const lines: string[] = [];
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer(
      { token: TOKEN, log: true, logStream: { write: (line: string) => lines.push(line) } },
      { modelPath: notAModel.path },
    );
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  it("redacts access_token in logged URLs, in every spelling the server accepts, and never logs the Authorization header", async () => {
    const accepted = [
      `/api/v1/samplers?access_token=${TOKEN}`,
      `/api/v1/samplers?limit=1&access_token=${TOKEN}&x=2`,
      `/api/v1/samplers?access%5Ftoken=${TOKEN}`,
      `/api/v1/samplers?access_token=${encodeURIComponent(TOKEN).replace("-", "%2D")}`,
      `http://x/api/v1/samplers?access_token=${TOKEN}`,
    ];
    for (const target of accepted) {
      const r = await rawRequest(s.base, "GET", target);
      // The token really was taken from the query, so the URL really carried a secret.
      expect(r.status, target).toBe(200);
    }
    expect((await rawRequest(s.base, "GET", `/api/v1/samplers?access_token=${WRONG}`)).status).toBe(401);
    expect((await rawRequest(s.base, "GET", "/api/v1/samplers", { authorization: `Bearer ${TOKEN}` })).status).toBe(
      200,
    );
    expect((await rawRequest(s.base, "GET", `/nowhere?access_token=${TOKEN}`)).status).toBe(200);

    const log = lines.join("");
    const urls = lines.flatMap((l) => {
      const url = (JSON.parse(l) as { req?: { url?: string } }).req?.url;
      return url === undefined ? [] : [url];
    });
    expect(urls).toContain("/api/v1/samplers?access_token=[redacted]");
    expect(urls).toContain("/api/v1/samplers?limit=1&access_token=[redacted]&x=2");
    expect(urls).toContain("http://x/api/v1/samplers?access_token=[redacted]");
    expect(log).not.toContain(TOKEN);
    expect(log).not.toContain(encodeURIComponent(TOKEN).replace("-", "%2D"));
    expect(log).not.toContain(WRONG);
  });
});
