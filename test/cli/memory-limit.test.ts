/**
 * diffuse generate refuses, before anything runs, a generation whose memory estimate is over the limit (--max-memory
 * here, the machine's free memory by default): exit 2, one message with the estimate, the limit and the size that
 * fits, and no file. A larger --max-memory lets the same request run.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-memory-"));
const env = { DIFFUSE_CACHE: join(dir, "cache") };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("diffuse generate --max-memory (the embedded model)", () => {
  it("exits 2 naming the estimate, the limit and the largest size that fits, and writes nothing", async () => {
    const out = join(dir, "big.png");
    const r = await runCli(["generate", "a red circle", "-W", "1024", "-H", "1024", "--max-memory", "0.5", "-o", out], {
      env,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a 1024x1024 generation needs about \d+\.\d GiB of memory/);
    expect(r.stderr).toContain("over the limit of 0.5 GiB");
    expect(r.stderr).toMatch(/the largest size of its shape that fits is (\d+)x\1/);
    expect(r.stderr).toContain("raise --max-memory to");
    expect(existsSync(out)).toBe(false);
  });

  it("runs the request a limit refuses once --max-memory is raised", async () => {
    const out = join(dir, "small.png");
    const args = ["generate", "a red circle", "-W", "64", "-H", "64", "--steps", "1", "-o", out];
    const refused = await runCli([...args, "--max-memory", "0.1"], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("not even 64 px fits");
    const ran = await runCli([...args, "--max-memory", "2"], { env });
    expect(ran.code).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  it("refuses a --max-memory that is not a positive number", async () => {
    const r = await runCli(["generate", "x", "--max-memory", "0", "-o", join(dir, "x.png")], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--max-memory 0 is not a memory size");
  });
});
