import { cpSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import type { RgbImage } from "../../src/image/codec.js";
import { exportInt8Calibration } from "../../src/pipeline/int8-calibration-export.js";
import {
  MAX_SHIPPED_CALIBRATION_BYTES,
  SHIPPED_CALIBRATION_FILE,
  shippedRanges,
} from "../../src/pipeline/int8-shipped-calibration.js";
import { loadPipeline, type LoadOptions } from "../../src/pipeline/load-pipeline.js";

const MODEL = join(import.meta.dirname, "../../models/tiny-shapes");
const PARAMS = { prompt: "a big red star on a blue background", seed: 3, steps: 12 };

/** What one int8 load in a fresh cache folder said and timed while generating, and its image. */
interface Run {
  status: string[];
  calibrated: string[];
  image?: RgbImage;
  error?: unknown;
  cacheDir: string;
}

async function int8Run(model: string, opts: Partial<LoadOptions> = {}): Promise<Run> {
  const cacheDir = opts.cacheDir ?? mkdtempSync(join(tmpdir(), "diffuse-shipcal-cache-"));
  const run: Run = { status: [], calibrated: [], cacheDir };
  const pipe = await loadPipeline(model, {
    cacheDir,
    threads: 1,
    precision: "int8",
    onStatus: (m) => run.status.push(m),
    onTiming: (t) => {
      if (t.phase === "calibrate") run.calibrated.push(t.network!);
    },
    ...opts,
  });
  try {
    run.image = (await pipe.generate(PARAMS)).images[0]!.image;
  } catch (e) {
    run.error = e;
  } finally {
    await pipe.close();
  }
  return run;
}

/** A copy of the embedded model in a temporary folder, where a calibration can be written beside it. */
function modelCopy(): string {
  const dir = join(mkdtempSync(join(tmpdir(), "diffuse-shipcal-model-")), "tiny-shapes");
  cpSync(MODEL, dir, { recursive: true });
  return dir;
}

describe("a model folder ships its int8 calibration", () => {
  let model: string;
  let shipped: string;
  let exported: Run;
  let file: Record<string, any>;

  beforeAll(async () => {
    model = modelCopy();
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-shipcal-cache-"));
    const status: string[] = [];
    const result = await exportInt8Calibration(model, { cacheDir, threads: 1, onStatus: (m) => status.push(m) });
    shipped = join(model, SHIPPED_CALIBRATION_FILE);
    expect(result.file).toBe(shipped);
    expect(status.filter((m) => m.startsWith("calibrating"))).toHaveLength(2); // measured: the cache was empty
    file = JSON.parse(readFileSync(shipped, "utf8"));
    // The calibrated model's own run, from the cache the export measured into.
    exported = await int8Run(model, { cacheDir });
    expect(exported.calibrated).toEqual([]);
  }, 120_000);

  it("writes the ranges of both int8 networks with what makes them valid", () => {
    expect(file.format).toBe("diffuse-int8-calibration");
    expect(file.version).toBe(2);
    expect(file.modelSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(file.measuredWith).toMatchObject({ sampler: "Euler", steps: 8, cfgScale: 7 });
    expect(file.measuredWith.prompts).toHaveLength(4);
    for (const network of ["unet", "vae_decoder"]) {
      expect(file.networks[network].graph).toMatch(/^[0-9a-f]{32}$/);
      const ranges = Object.values(file.networks[network].ranges) as { min: number; max: number }[];
      expect(ranges.length).toBeGreaterThan(4);
      for (const r of ranges) expect(r.min).toBeLessThanOrEqual(r.max);
    }
  });

  it("a fresh cache's int8 load uses the shipped file, calibrates nothing, and draws the same image", async () => {
    const run = await int8Run(model);
    expect(run.error).toBeUndefined();
    expect(run.calibrated).toEqual([]);
    expect(run.status.filter((m) => m.startsWith("calibrating"))).toEqual([]);
    expect(run.status.filter((m) => m.includes("using the calibration shipped with the model"))).toHaveLength(2);
    expect(Buffer.compare(run.image!.data, exported.image!.data)).toBe(0);
    // Copied into the cache: the next load reads it there.
    expect(readdirSync(run.cacheDir).filter((e) => /-int8-(unet|vae_decoder)-ranges-.*\.json$/.test(e))).toHaveLength(
      2,
    );
  }, 120_000);

  it("exporting again from a cache that holds the ranges measures nothing and writes the same ranges", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "diffuse-shipcal-out-")), "again.json");
    const status: string[] = [];
    await exportInt8Calibration(model, {
      cacheDir: exported.cacheDir,
      threads: 1,
      out,
      onStatus: (m) => status.push(m),
    });
    expect(status.filter((m) => m.startsWith("calibrating"))).toEqual([]);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(file);
  }, 120_000);

  it("a file measured on other weights is ignored, said why, and the model is calibrated", async () => {
    const other = modelCopy();
    writeFileSync(join(other, SHIPPED_CALIBRATION_FILE), JSON.stringify({ ...file, modelSha256: "0".repeat(64) }));
    const run = await int8Run(other);
    expect(run.error).toBeUndefined();
    expect(run.calibrated.sort()).toEqual(["unet", "vae_decoder"]);
    expect(run.status.filter((m) => m.includes("measured on other weights"))).toHaveLength(2);
    expect(run.status.some((m) => m.includes("using the calibration shipped"))).toBe(false);
  }, 120_000);

  it("ranges of another fp32 graph are ignored for that network only", async () => {
    const other = modelCopy();
    const networks = { ...file.networks, unet: { ...file.networks.unet, graph: "f".repeat(32) } };
    writeFileSync(join(other, SHIPPED_CALIBRATION_FILE), JSON.stringify({ ...file, networks }));
    const run = await int8Run(other);
    expect(run.error).toBeUndefined();
    expect(run.calibrated).toEqual(["unet"]);
    expect(run.status.some((m) => /int8 unet: ignoring .* another fp32 graph/.test(m))).toBe(true);
    expect(run.status.some((m) => m.startsWith("int8 vae_decoder: using the calibration shipped"))).toBe(true);
  }, 120_000);

  it("a malformed file stops the int8 load with an InputError naming the file and the fix", async () => {
    const other = modelCopy();
    const path = join(other, SHIPPED_CALIBRATION_FILE);
    writeFileSync(path, "{ not json");
    const run = await int8Run(other);
    expect(run.error).toBeInstanceOf(InputError);
    expect((run.error as Error).message).toContain(path);
    expect((run.error as Error).message).toContain("diffuse calibrate");
    expect(run.calibrated).toEqual([]);
  }, 120_000);

  it("diffuse calibrate replaces a malformed file rather than reading it", async () => {
    const other = modelCopy();
    const path = join(other, SHIPPED_CALIBRATION_FILE);
    writeFileSync(path, "{ not json");
    const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-shipcal-cache-"));
    await exportInt8Calibration(other, { cacheDir, threads: 1 });
    expect(JSON.parse(readFileSync(path, "utf8")).format).toBe("diffuse-int8-calibration");
  }, 120_000);
});

describe("reading a shipped calibration file", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-shipcal-file-"));
  const sha = "a".repeat(64);
  const graph = "b".repeat(32);
  const want = { modelSha256: sha, network: "unet" as const, graph: () => graph, tensors: ["x", "y"] };
  const doc = (over: Record<string, unknown> = {}, ranges: Record<string, unknown> = {}) => ({
    format: "diffuse-int8-calibration",
    version: 2,
    modelSha256: sha,
    measuredWith: {},
    networks: { unet: { graph, ranges: { x: { min: -1, max: 2 }, y: { min: 0, max: 0.5 }, ...ranges } } },
    ...over,
  });
  let n = 0;
  const write = (text: string): string => {
    const path = join(dir, `c${n++}.json`);
    writeFileSync(path, text);
    return path;
  };

  it("gives the ranges of a file for this model and graph", () => {
    const found = shippedRanges(write(JSON.stringify(doc())), want);
    expect(found.kind).toBe("valid");
    if (found.kind === "valid") expect(found.ranges.get("x")).toEqual({ min: -1, max: 2 });
    expect(shippedRanges(join(dir, "none.json"), want)).toEqual({ kind: "absent" });
  });

  it.each([
    ["another model", doc({ modelSha256: "c".repeat(64) }), /measured on other weights/],
    ["a newer format", doc({ version: 3 }), /format version 3.*reads version 2/],
    ["the older format of full-extent ranges", doc({ version: 1 }), /format version 1.*reads version 2/],
    ["no ranges for the network", doc({ networks: {} }), /no ranges for the unet/],
    [
      "another graph",
      doc({ networks: { unet: { graph: "d".repeat(32), ranges: { x: { min: 0, max: 1 } } } } }),
      /another fp32 graph/,
    ],
    [
      "too few tensors",
      doc({ networks: { unet: { graph, ranges: { x: { min: 0, max: 1 } } } } }),
      /lacks the ranges of 1 tensors .*\(y/,
    ],
  ])("ignores a file of %s, saying why", (_, d, reason) => {
    const found = shippedRanges(write(JSON.stringify(d)), want);
    expect(found.kind).toBe("stale");
    if (found.kind === "stale") expect(found.reason).toMatch(reason);
  });

  it.each([
    ["bad JSON", "{ ranges", /is not valid JSON/],
    ["an overflowing number", JSON.stringify(doc()).replace('"max":2', '"max":1e999'), /"x".*max: Infinity.*finite/],
    ["an inverted range", JSON.stringify(doc({}, { y: { min: 3, max: 1 } })), /"y".*a <= b/],
    ["a range that is not two numbers", JSON.stringify(doc({}, { y: [0, 1] })), /"y".*expected \{"min"/],
    ["another kind of file", JSON.stringify({ version: 1 }), /"format" is not "diffuse-int8-calibration"/],
    ["a bad model hash", JSON.stringify(doc({ modelSha256: "abc" })), /"modelSha256" is not a sha256/],
  ])("refuses %s with an InputError naming the file and the fix", (_, text, problem) => {
    const path = write(text);
    let error: unknown;
    try {
      shippedRanges(path, want);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toMatch(problem);
    expect((error as Error).message).toContain("diffuse calibrate");
  });

  it("refuses a file over the size bound before reading it", () => {
    const path = write("{}");
    truncateSync(path, MAX_SHIPPED_CALIBRATION_BYTES + 1);
    expect(() => shippedRanges(path, want)).toThrow(/more than the 16777216 bytes allowed.*diffuse calibrate/);
  });
});
