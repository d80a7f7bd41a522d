import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Command } from "commander";
import { registerServe } from "../../src/cli/serve.js";
import { InputError } from "../../src/errors.js";
import { isLoopback, resolveServerConfig } from "../../src/server/config.js";
import { resolveInside } from "../../src/server/static.js";
import { startServer, tempDir, type TestServer } from "./harness.js";

const TOKEN = "s3cret-token-for-tests";
const SECRET = "TOP-SECRET-CONTENT-0451";

/** GET with the path sent byte for byte (fetch would normalise ../ away before it left the client). */
function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method: "GET", headers }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString("latin1")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("refusing to start exposed without a token", () => {
  const notAModel = tempDir("diffuse-not-a-model-");
  afterAll(() => notAModel.remove());

  it("refuses a non-loopback host without a token, with a message saying what to do", () => {
    expect(() => resolveServerConfig({ host: "0.0.0.0", modelPath: notAModel.path })).toThrow(InputError);
    expect(() => resolveServerConfig({ host: "0.0.0.0", modelPath: notAModel.path })).toThrow(/--token/);
    expect(() => resolveServerConfig({ host: "192.168.1.20", modelPath: notAModel.path, token: "" })).toThrow(
      /DIFFUSE_TOKEN/,
    );
    expect(resolveServerConfig({ host: "0.0.0.0", modelPath: notAModel.path, token: TOKEN }).token).toBe(TOKEN);
  });

  it("diffuse serve --host 0.0.0.0 without a token exits before listening", async () => {
    const program = new Command("diffuse").exitOverride();
    registerServe(program);
    const saved = process.env["DIFFUSE_TOKEN"];
    delete process.env["DIFFUSE_TOKEN"];
    try {
      await expect(
        program.parseAsync(["node", "diffuse", "serve", "--host", "0.0.0.0", "--port", "0", "--model", notAModel.path]),
      ).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without a token/);
    } finally {
      if (saved !== undefined) process.env["DIFFUSE_TOKEN"] = saved;
    }
  });

  it("treats only loopback addresses as loopback", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "192.168.0.1", "example.com", "127.0.0.1.evil.com"])
      expect(isLoopback(h), h).toBe(false);
  });
});

describe("a server started with a token", () => {
  let s: TestServer;
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer({ token: TOKEN }, { modelPath: notAModel.path });
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  it("answers 401 to every API request without the token, ours and A1111's", async () => {
    for (const path of [
      "/api/v1/samplers",
      "/api/v1/jobs",
      "/sdapi/v1/samplers",
      "/sdapi/v1/progress",
      "/api/docs",
      "/%61pi/v1/jobs",
      "//api/v1/jobs",
      "/API/v1/jobs",
    ]) {
      const r = await fetch(`${s.base}${path}`);
      expect(r.status, path).toBe(401);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    const post = await fetch(`${s.base}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"prompt":"x"}',
    });
    expect(post.status).toBe(401);
    const a1111 = await fetch(`${s.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"prompt":"x"}',
    });
    expect(a1111.status).toBe(401);
  });

  it("serves the page's own files without a token, so the page can load and ask for it", async () => {
    const page = await fetch(`${s.base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    expect((await fetch(`${s.base}/api/v1/jobs`)).status).toBe(401);
  });

  it("answers 401 to a wrong token and serves the right one", async () => {
    const wrong = await fetch(`${s.base}/api/v1/samplers`, { headers: { authorization: "Bearer not-the-token" } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${s.base}/api/v1/samplers`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.status).toBe(200);
    const a1111 = await fetch(`${s.base}/sdapi/v1/samplers`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(a1111.status).toBe(200);
  });

  it("takes ?access_token= on GET (EventSource cannot set headers) but not on POST", async () => {
    expect((await fetch(`${s.base}/api/v1/samplers?access_token=${TOKEN}`)).status).toBe(200);
    const post = await fetch(`${s.base}/api/v1/jobs?access_token=${TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"prompt":"x"}',
    });
    expect(post.status).toBe(401);
  });
});

describe("path parameters cannot leave the data folder", () => {
  let s: TestServer;
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer({}, { modelPath: notAModel.path });
    // A secret beside images/ and web/, and a page, so an escape would show.
    writeFileSync(join(s.dataDir, "secret.txt"), SECRET);
    writeFileSync(join(s.dataDir, "diffuse.txt"), SECRET);
    const web = join(s.dataDir, "no-web");
    mkdirSync(web, { recursive: true });
    writeFileSync(join(web, "index.html"), "<!doctype html><title>page</title>");
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  const escapes = [
    "../secret.txt",
    "../../secret.txt",
    "..%2fsecret.txt",
    "..%2F..%2Fsecret.txt",
    "%2e%2e%2fsecret.txt",
    "%2e%2e/%2e%2e/secret.txt",
    "%2E%2E%2F%2E%2E%2Fsecret.txt",
    "..%5csecret.txt",
    "%252e%252e%252fsecret.txt",
    "....//secret.txt",
    "..%00/secret.txt",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "../../../../../../etc/passwd",
  ];

  for (const prefix of ["/api/v1/images/", "/api/v1/jobs/", "/", "/assets/"]) {
    it(`rejects traversal through ${prefix}`, async () => {
      for (const e of escapes) {
        const r = await rawGet(s.base, `${prefix}${e}`);
        expect(r.body, `${prefix}${e}`).not.toContain(SECRET);
        expect(r.body, `${prefix}${e}`).not.toMatch(/root:.*:0:0:/);
        if (prefix.startsWith("/api")) expect([400, 404], `${prefix}${e} -> ${r.status}`).toContain(r.status);
      }
    });
  }

  it("rejects traversal in the events URL", async () => {
    for (const e of escapes) {
      const r = await rawGet(s.base, `/api/v1/jobs/${e}/events`);
      expect([400, 404], `${e} -> ${r.status}`).toContain(r.status);
      expect(r.body).not.toContain(SECRET);
    }
  });

  it("resolves static paths only inside the web folder", () => {
    const root = join(s.dataDir, "no-web");
    expect(resolveInside(root, "index.html")).toBe(join(root, "index.html"));
    expect(resolveInside(root, "a/../index.html")).toBe(join(root, "index.html"));
    for (const p of ["../secret.txt", "a/../../secret.txt", "/../secret.txt", "..\\secret.txt", "x\0y"])
      expect(resolveInside(root, p), p).toBeUndefined();
  });

  it("refuses requests addressed to another host name (DNS rebinding) when there is no token", async () => {
    const r = await rawGet(s.base, "/api/v1/samplers", { host: "attacker.example:7860" });
    expect(r.status).toBe(403);
    const ok = await rawGet(s.base, "/api/v1/samplers", { host: "localhost:7860" });
    expect(ok.status).toBe(200);
  });
});
