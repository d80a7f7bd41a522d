import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { KEY_PREFIX } from "../../src/worker/queue-protocol.js";
import { connectionOptions, parseQueueUrl, PASSWORD_ENV } from "../../src/worker/queue-url.js";
import { startRedis, type TestRedis } from "../helpers/redis-server.js";

describe("--queue redis:// URLs", () => {
  it("reads host, port, database, user and password, and shows the URL without the password", () => {
    expect(parseQueueUrl("redis://worker:s3cret%21@queue.internal:6380/2", {})).toEqual({
      display: "redis://worker:***@queue.internal:6380/2",
      host: "queue.internal",
      port: 6380,
      db: 2,
      username: "worker",
      password: "s3cret!",
      tls: false,
    });
  });

  it("defaults to port 6379 and database 0, takes the password from the environment when the URL has none, and TLS for rediss://", () => {
    expect(parseQueueUrl("rediss://10.0.0.5", { [PASSWORD_ENV]: "from-env" })).toMatchObject({
      host: "10.0.0.5",
      port: 6379,
      db: 0,
      password: "from-env",
      tls: true,
    });
    expect(parseQueueUrl("redis://[::1]:7000", {})).toMatchObject({ host: "::1", port: 7000, password: undefined });
  });

  it.each([
    ["queue:6379", /not redis or rediss/],
    ["http://queue:6379", /scheme http is not redis/],
    ["redis://queue:6379/jobs", /path \/jobs is not a database number/],
    ["redis://queue:6379?password=x", /query strings/],
    ["redis://:hunter2@", /not a URL/],
  ])("refuses %s with the reason and the expected shape, never echoing a password", (text, reason) => {
    let error: unknown;
    try {
      parseQueueUrl(text, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(reason);
    expect((error as Error).message).toMatch(/expected redis:\/\/\[user:password@\]host\[:port\]\[\/db\]/);
    expect((error as Error).message).not.toContain("hunter2");
  });
});

describe("--queue against a Redis that requires a password", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ password: "correct horse" });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const queueFor = (url: string, env: Record<string, string>) =>
    new Queue("generate.password-test", {
      connection: connectionOptions(parseQueueUrl(url, env), { failFast: true }),
      prefix: KEY_PREFIX,
    });

  it("connects with the password from the URL, or from $DIFFUSE_REDIS_PASSWORD when the URL has none", async () => {
    for (const [url, env] of [
      [redis.url, {}],
      [`redis://127.0.0.1:${redis.port}`, { [PASSWORD_ENV]: "correct horse" }],
    ] as const) {
      const q = queueFor(url, env);
      try {
        await q.add("generate", { n: 1 });
        expect(await q.count()).toBeGreaterThan(0);
      } finally {
        await q.close();
      }
    }
  });

  it("without it, Redis refuses the connection and the error says so", async () => {
    const q = queueFor(`redis://127.0.0.1:${redis.port}`, {});
    try {
      const error = await new Promise<Error>((resolve) => q.on("error", resolve));
      expect(error.message).toMatch(/NOAUTH|WRONGPASS|Authentication required/i);
    } finally {
      await q.close().catch(() => undefined);
    }
  });
});
