import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseQueueUrl, PASSWORD_ENV } from "../../src/worker/queue-url.js";

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
    expect(parseQueueUrl("rediss://10.0.0.5", { [PASSWORD_ENV]: "from-env" })).toMatchObject({ host: "10.0.0.5", port: 6379, db: 0, password: "from-env", tls: true });
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
