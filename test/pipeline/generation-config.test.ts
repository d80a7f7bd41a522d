import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { GENERATION_CONFIG_FILE, readGenerationConfig } from "../../src/pipeline/generation-config.js";
import { DEFAULT_CFG_SCALE, resolveParams } from "../../src/pipeline/params.js";

function folderWith(text?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "gen-config-"));
  if (text !== undefined) writeFileSync(join(dir, GENERATION_CONFIG_FILE), text);
  return dir;
}

const defaults = { size: 64, randomSeed: () => 1n };

describe("a model's recommended generation settings", () => {
  it("reads guidance_scale from the first folder that has generation_config.json", () => {
    expect(readGenerationConfig([folderWith(), folderWith('{"guidance_scale": 3.5}')])).toEqual({ cfgScale: 3.5 });
    expect(readGenerationConfig([folderWith()])).toEqual({});
    expect(readGenerationConfig([folderWith('{"other": 1}')])).toEqual({});
  });

  it("names the file and the key when the value or the JSON is bad", () => {
    const bad = folderWith('{"guidance_scale": "high"}');
    expect(() => readGenerationConfig([bad])).toThrow(InputError);
    expect(() => readGenerationConfig([bad])).toThrow(
      /generation_config\.json: guidance_scale "high" is invalid: expected a number from 0 to 100/,
    );
    expect(() => readGenerationConfig([folderWith("{guidance")])).toThrow(/generation_config\.json is not valid JSON/);
  });

  it("is the cfg a request without one gets; a cfg the request names wins; 7 without a recommendation", () => {
    expect(resolveParams({ prompt: "x" }, { ...defaults, cfgScale: 3 }).cfgScale).toBe(3);
    expect(resolveParams({ prompt: "x", cfgScale: 9 }, { ...defaults, cfgScale: 3 }).cfgScale).toBe(9);
    expect(resolveParams({ prompt: "x" }, defaults).cfgScale).toBe(DEFAULT_CFG_SCALE);
    expect(DEFAULT_CFG_SCALE).toBe(7);
  });

  it("also recommends steps (num_inference_steps) and a sampler (sampler_name, ours or A1111's), as Turbo and Lightning models need", () => {
    const turbo = folderWith('{"num_inference_steps": 4, "guidance_scale": 0, "sampler_name": "Euler"}');
    expect(readGenerationConfig([turbo])).toEqual({ steps: 4, cfgScale: 0, sampler: "euler" });
    const recommended = readGenerationConfig([turbo]);
    const p = resolveParams(
      { prompt: "x" },
      { ...defaults, cfgScale: recommended.cfgScale, steps: recommended.steps, sampler: recommended.sampler },
    );
    expect([p.steps, p.cfgScale, p.sampler]).toEqual([4, 0, "euler"]);
    const asked = resolveParams(
      { prompt: "x", steps: 30, sampler: "dpm++2m" },
      { ...defaults, steps: 4, sampler: "euler" },
    );
    expect([asked.steps, asked.sampler]).toEqual([30, "dpm++2m"]);
    expect(() => readGenerationConfig([folderWith('{"num_inference_steps": 2.5}')])).toThrow(
      /num_inference_steps 2\.5 is invalid: expected an integer from 1 to 1000/,
    );
    expect(() => readGenerationConfig([folderWith('{"sampler_name": "warp drive"}')])).toThrow(
      /sampler_name "warp drive" is not a sampler diffuse has: use one of euler, euler-a/,
    );
  });
});
