import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

describe("the queue's command-line flags", () => {
  it("serve --queue refuses generation flags, which belong on the workers, naming them and where they go", async () => {
    const r = await runCli([
      "serve",
      "--queue",
      "redis://127.0.0.1:1",
      "--threads",
      "2",
      "--no-watermark",
      "--port",
      "0",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /--threads, --no-watermark apply to generation, which --queue hands to the workers: pass them to diffuse worker instead/,
    );
  });

  it("worker needs --queue, and a --queue that is not a redis:// URL is refused with the shape expected", async () => {
    const none = await runCli(["worker"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--queue <redis-url>/);
    const bad = await runCli(["worker", "--queue", "http://queue:6379"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /--queue http:\/\/queue:6379: the scheme http is not redis or rediss; expected redis:\/\/\[user:password@\]host/,
    );
  });
});
