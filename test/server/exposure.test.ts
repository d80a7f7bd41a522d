/**
 * Who can reach the server: only this machine by default (loopback), nobody else without a token, no web page
 * through DNS rebinding (a hostile name resolving to 127.0.0.1: the Host header gives it away), and no page on
 * another origin reading an answer (no CORS headers anywhere, preflights included). Routes come from fastify's
 * own table, so a route added later is covered too.
 */
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerServe } from "../../src/cli/serve.js";
import { InputError } from "../../src/errors.js";
import { DEFAULTS, resolveServerConfig } from "../../src/server/config.js";
import { runCli } from "../helpers/cli.js";
import { rawHeaders, rawRequest, routesOf, startServer, tempDir, type Route, type TestServer } from "./harness.js";
import { seedFinishedJob } from "./seeded-job.js";

const TOKEN = "s3cret-token-for-tests";

/** An IPv4 address of this machine that is not loopback, when it has one. */
function outsideAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

describe("loopback by default", () => {
  const notAModel = tempDir("diffuse-not-a-model-");
  const data = tempDir("diffuse-exposure-data-");
  afterAll(() => {
    notAModel.remove();
    data.remove();
  });

  it("the config's default host is 127.0.0.1, and so is serve's --host", () => {
    expect(DEFAULTS.host).toBe("127.0.0.1");
    expect(resolveServerConfig({ modelPath: notAModel.path }).host).toBe("127.0.0.1");
    const program = new Command("diffuse");
    registerServe(program);
    expect(
      program.commands.find((c) => c.name() === "serve")!.options.find((o) => o.long === "--host")!.defaultValue,
    ).toBe("127.0.0.1");
  });

  it("`diffuse serve` without --host listens on 127.0.0.1 only, and stops on SIGTERM", async () => {
    let address = "";
    let reachableOutside: boolean | undefined;
    const outside = outsideAddress();
    const env = { DIFFUSE_TOKEN: "", DIFFUSE_CACHE: data.path };
    // The embedded model: serve checks the model it generates with before listening.
    const result = await runCli(["serve", "--port", "0", "--data", data.path], {
      env,
      onSpawn: (child) => {
        let err = "";
        child.stderr!.on("data", (d: Buffer) => {
          err += d.toString();
          const m = /diffuse serving (http:\/\/\S+)/.exec(err);
          if (!m || address) return;
          address = m[1]!;
          const port = Number(new URL(address).port);
          void (outside ? connects(outside, port) : Promise.resolve(undefined)).then((r) => {
            reachableOutside = r;
            child.kill("SIGTERM");
          });
        });
      },
    });
    expect(address, result.stderr).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    if (outside) expect(reachableOutside, `reachable on ${outside}`).toBe(false);
    expect(result.code, result.stderr).toBe(0);
  });
});

describe("no listening beyond loopback without a token", () => {
  const notAModel = tempDir("diffuse-not-a-model-");
  afterAll(() => notAModel.remove());

  const exposed = [
    "0.0.0.0",
    "::",
    "[::]",
    "192.168.1.20",
    "10.0.0.5",
    "::ffff:192.168.1.20",
    "example.com",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    " 0.0.0.0 ",
  ];

  it("refuses every non-loopback host without a token (absent or empty), naming --token and DIFFUSE_TOKEN", () => {
    for (const host of exposed) {
      for (const token of [undefined, ""]) {
        let error: unknown;
        try {
          resolveServerConfig({ host, modelPath: notAModel.path, token });
        } catch (e) {
          error = e;
        }
        expect(error, `${host} token=${JSON.stringify(token)}`).toBeInstanceOf(InputError);
        expect((error as Error).message).toMatch(
          /refusing to listen on .* without a token.*--token SECRET \(or set DIFFUSE_TOKEN\)/,
        );
      }
      expect(resolveServerConfig({ host, modelPath: notAModel.path, token: TOKEN }).token).toBe(TOKEN);
    }
    for (const host of ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"]) {
      expect(resolveServerConfig({ host, modelPath: notAModel.path }).token, host).toBeUndefined();
    }
  });

  it("`diffuse serve --host ::` with an empty DIFFUSE_TOKEN exits with the message and never listens", async () => {
    const data = tempDir("diffuse-exposure-data-");
    try {
      const r = await runCli(["serve", "--host", "::", "--port", "0", "--model", notAModel.path, "--data", data.path], {
        env: { DIFFUSE_TOKEN: "" },
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/refusing to listen on :: without a token/);
      expect(r.stderr).not.toMatch(/diffuse serving/);
    } finally {
      data.remove();
    }
  });
});

const SOME_ID = "0b9c2a3e-7f61-4d2a-9a53-2f7d0c1e4b88";

/** Every route and method of a server, with ids filled in from a seeded job, plus a path no route matches. */
function requestsOf(routes: Route[], ids: { jobId: string; imageId: string }): { method: string; path: string }[] {
  const out = routes.flatMap((r) =>
    r.methods.map((method) => ({
      method,
      path: r.path
        .replace(/^\/api\/v1\/images\/:id/, `/api/v1/images/${ids.imageId}`)
        .replace(/:id/g, ids.jobId)
        .replace(/:[a-z]+/g, SOME_ID)
        .replace(/\*$/, "index.html"),
    })),
  );
  return [
    ...out,
    { method: "GET", path: "/api/v1/no-such-route" },
    { method: "POST", path: "/sdapi/v1/no-such-route" },
  ];
}

/** A body that fails validation on every route that reads one: nothing runs and nothing is stored. */
const INERT_BODY = "[]";

/** Status and headers only: the seeded job's event stream is among the routes. */
function send(
  s: TestServer,
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string> }> {
  const body = method === "POST" ? INERT_BODY : undefined;
  return rawHeaders(
    s.base,
    method,
    path,
    body === undefined ? headers : { ...headers, "content-type": "application/json" },
    body,
  );
}

describe("the Host allow-list of a server without a token (DNS rebinding)", () => {
  let s: TestServer;
  let ids: { jobId: string; imageId: string };
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer({}, { modelPath: notAModel.path });
    ids = await seedFinishedJob(s.app);
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  it("answers 403 naming the host to every route and method when Host names anything but loopback", async () => {
    const port = new URL(s.base).port;
    const hostile = [
      "evil.example",
      `evil.example:${port}`,
      `127.0.0.1.evil.example:${port}`,
      `localhost.evil.example:${port}`,
      `192.168.1.20:${port}`,
      `0.0.0.0:${port}`,
      "[::]",
      `EVIL.example:${port}`,
    ];
    const answered: string[] = [];
    for (const { method, path } of requestsOf(routesOf(s.app.fastify), ids)) {
      for (const host of hostile) {
        const r = await send(s, method, path, { host });
        if (r.status !== 403) answered.push(`${method} ${path} Host: ${host} -> ${r.status}`);
      }
    }
    expect(answered).toEqual([]);
    const r = await rawRequest(s.base, "GET", "/api/v1/jobs", { host: "evil.example" });
    expect(JSON.parse(r.body)).toMatchObject({
      error: "forbidden_host",
      message: expect.stringMatching(
        /must be addressed to 127\.0\.0\.1 or localhost, not "evil\.example".*--host and --token/,
      ),
    });
  });

  it("refuses an absolute-form target naming another host, too", async () => {
    const r = await rawRequest(s.base, "GET", "http://evil.example/api/v1/jobs", { host: "evil.example" });
    expect(r.status).toBe(403);
  });

  it("serves the loopback names, in any case and with any port", async () => {
    const port = new URL(s.base).port;
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `LocalHost:${port}`,
      "localhost",
      `[::1]:${port}`,
      `127.0.0.1`,
    ]) {
      const r = await rawRequest(s.base, "GET", `/api/v1/jobs/${ids.jobId}`, { host });
      expect(r.status, host).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ id: ids.jobId, state: "done" });
    }
  });
});

describe("a server started with --host and a token answers other names", () => {
  let s: TestServer;
  let ids: { jobId: string; imageId: string };
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    // As `serve --host 0.0.0.0 --token ...` resolves it; the test still listens on loopback.
    s = await startServer({ host: "0.0.0.0", token: TOKEN }, { modelPath: notAModel.path });
    ids = await seedFinishedJob(s.app);
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  it("with the token: any Host name gets its answer; without: 401, not 403", async () => {
    for (const host of ["diffuse.example", "diffuse.example:7860", "192.168.1.20:7860", "evil.example"]) {
      const ok = await send(s, "GET", `/api/v1/jobs/${ids.jobId}`, { host, authorization: `Bearer ${TOKEN}` });
      expect(ok.status, host).toBe(200);
      const image = await send(s, "GET", `/api/v1/images/${ids.imageId}`, { host, authorization: `Bearer ${TOKEN}` });
      expect(image.status, host).toBe(200);
      expect(image.headers["content-type"]).toBe("image/png");
      const none = await send(s, "GET", `/api/v1/jobs/${ids.jobId}`, { host });
      expect(none.status, host).toBe(401);
    }
  });
});

describe("no CORS headers on any route", () => {
  const notAModel = tempDir("diffuse-not-a-model-");
  afterAll(() => notAModel.remove());

  /** Origins a browser would send from a hostile page, and the preflight a cross-origin fetch with JSON starts with. */
  const origins = ["http://evil.example", "null", "http://localhost:3000"];

  for (const [label, overrides, auth] of [
    ["without a token", {}, {}],
    ["with a token (and the token sent)", { token: TOKEN }, { authorization: `Bearer ${TOKEN}` }],
  ] as const) {
    it(`${label}: no Access-Control-* header in any answer, preflight OPTIONS included`, async () => {
      const s = await startServer(overrides, { modelPath: notAModel.path });
      try {
        const ids = await seedFinishedJob(s.app);
        const requests = requestsOf(routesOf(s.app.fastify), ids);
        const leaks: string[] = [];
        const statuses = new Set<number>();
        for (const { method, path } of requests) {
          for (const origin of origins) {
            const headers = { ...auth, origin, "sec-fetch-site": "cross-site" };
            const preflight = await rawHeaders(s.base, "OPTIONS", path, {
              ...headers,
              "access-control-request-method": method,
              "access-control-request-headers": "content-type, authorization",
              "access-control-request-private-network": "true",
            });
            const actual = await send(s, method, path, headers);
            for (const [kind, r] of [
              ["preflight", preflight],
              ["request", actual],
            ] as const) {
              statuses.add(r.status);
              const cors = Object.keys(r.headers).filter((h) => h.startsWith("access-control-"));
              if (cors.length) leaks.push(`${kind} ${method} ${path} Origin: ${origin} -> ${cors.join(", ")}`);
            }
          }
        }
        expect(leaks).toEqual([]);
        // The answers checked include successes (the seeded job, its image, its event stream, the page).
        expect(statuses.has(200)).toBe(true);
      } finally {
        await s.close();
      }
    });
  }
});
