import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const env = { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-cache-")) };
const pixels = async (path: string) => sharp(readFileSync(path)).raw().toBuffer();

describe("diffuse generate --eta, --s-noise, --ensd and --s-churn on the embedded model", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-knobs-"));
  // No robust watermark (it carries a random job id per run), so that a regenerated image can be compared.
  const base = ["a blue square", "-W", "64", "-H", "64", "--steps", "3", "--seed", "11", "--no-watermark"];

  it("writes Eta, Sigma noise and ENSD; info --json reads them back, and they make the same image", async () => {
    const out = join(dir, "knobs.png");
    const knobs = ["--sampler", "DPM++ 2S a", "--eta", "0.5", "--s-noise", "0.9", "--ensd", "31337"];
    const r = await runCli(["generate", ...base, ...knobs, "-o", out], { env });
    expect(r.code, r.stderr).toBe(0);
    const info = await runCli(["info", out, "--json"], { env });
    expect(info.code, info.stderr).toBe(0);
    const { raw, request } = JSON.parse(info.stdout) as { raw: string; request: Record<string, unknown> };
    expect(raw).toMatch(/Eta: 0\.5/);
    expect(raw).toMatch(/Sigma noise: 0\.9/);
    expect(raw).toMatch(/ENSD: 31337/);
    expect(request).toMatchObject({ eta: 0.5, sNoise: 0.9, etaNoiseSeedDelta: 31337 });
    const again = join(dir, "again.png");
    const flags = ["--eta", String(request["eta"]), "--s-noise", String(request["sNoise"])];
    flags.push("--ensd", String(request["etaNoiseSeedDelta"]));
    const r2 = await runCli(["generate", ...base, "--sampler", "DPM++ 2S a", ...flags, "-o", again], { env });
    expect(r2.code, r2.stderr).toBe(0);
    expect((await pixels(again)).equals(await pixels(out))).toBe(true);
  });

  it("--s-churn, --s-tmin and --s-tmax churn Euler and are written as A1111 writes them", async () => {
    const out = join(dir, "churn.png");
    const churn = ["--sampler", "Euler", "--s-churn", "0.5", "--s-tmin", "0.1", "--s-tmax", "10"];
    const r = await runCli(["generate", ...base, ...churn, "-o", out], { env });
    expect(r.code, r.stderr).toBe(0);
    const info = await runCli(["info", out, "--json"], { env });
    const { raw, request } = JSON.parse(info.stdout) as { raw: string; request: Record<string, unknown> };
    expect(raw).toMatch(/Sigma churn: 0\.5, Sigma tmin: 0\.1, Sigma tmax: 10/);
    expect(request).toMatchObject({ sChurn: 0.5, sTmin: 0.1, sTmax: 10 });
  });
});
