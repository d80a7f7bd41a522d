import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { getJson, pngBase64, postJson, startServer, tempDir, type TestServer } from "./harness.js";

type Generated = { images: string[]; info: string; parameters: Record<string, unknown> };
type Failure = { detail: string };

/**
 * script_args as A1111 1.10's X/Y/Z plot run() takes them: x_type, x_values, x_values_dropdown, y_..., z_...,
 * draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x, vary_seeds_y, vary_seeds_z,
 * margin_size, csv_mode. Types index the page's axis options: txt2img 6 CFG Scale, 9 Sampler; img2img 24 Denoising.
 */
const args = (
  x: [number, string, string[]],
  y: [number, string, string[]],
  more: Partial<Record<number, unknown>> = {},
) => {
  const a: unknown[] = [...x, ...y, 0, "", [], true, false, false, false, false, false, false, 0, false];
  for (const [i, v] of Object.entries(more)) a[Number(i)] = v;
  return a;
};

describe('A1111\'s X/Y/Z plot (script_name "x/y/z plot")', () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path }, { modelPath: defaultModelPath() });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("is listed by /sdapi/v1/scripts and /sdapi/v1/script-info", async () => {
    const scripts = await getJson<{ txt2img: string[]; img2img: string[] }>(`${s.base}/sdapi/v1/scripts`);
    expect(scripts.txt2img).toContain("x/y/z plot");
    expect(scripts.img2img).toContain("x/y/z plot");
    const info = await getJson<
      { name: string; is_img2img: boolean; args: { label: string; choices: string[] | null }[] }[]
    >(`${s.base}/sdapi/v1/script-info`);
    const t2i = info.find((i) => i.name === "x/y/z plot" && !i.is_img2img)!;
    expect(t2i.args).toHaveLength(18);
    expect(t2i.args[0]!.choices!.slice(0, 11)).toEqual([
      "Nothing",
      "Seed",
      "Var. seed",
      "Var. strength",
      "Steps",
      "Hires steps",
      "CFG Scale",
      "Prompt S/R",
      "Prompt order",
      "Sampler",
      "Hires sampler",
    ]);
  });

  it("answers txt2img with the grid, then the cells, and every cell's prompt, seed and infotext in info", async () => {
    const r = await postJson<Generated>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "a red circle",
      steps: 2,
      seed: 5,
      width: 64,
      height: 64,
      script_name: "x/y/z plot",
      // The Sampler axis has choices: its values come from the dropdown list, as A1111's page sends them.
      script_args: args([6, "3,7", []], [9, "", ["Euler a", "DDIM"]], { 10: true }),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.images).toHaveLength(5);
    const grid = await sharp(Buffer.from(r.body.images[0]!, "base64")).metadata();
    expect(grid.width).toBeGreaterThan(128);
    expect(grid.height).toBeGreaterThan(128);
    const cell = await sharp(Buffer.from(r.body.images[1]!, "base64")).metadata();
    expect([cell.width, cell.height]).toEqual([64, 64]);
    const info = JSON.parse(r.body.info);
    expect(info.index_of_first_image).toBe(1);
    expect(info.all_seeds).toEqual([5, 5, 5, 5]);
    expect(info.all_prompts).toEqual(Array(4).fill("a red circle"));
    expect(info.infotexts).toHaveLength(5);
    expect(info.infotexts[0]).toMatch(
      /Script: X\/Y\/Z plot, X Type: CFG Scale, X Values: "3,7", Y Type: Sampler, Y Values: "Euler a,DDIM"/,
    );
    // Cells in grid order, x fastest.
    expect(info.infotexts[2]).toMatch(/Sampler: Euler a, CFG scale: 7,/);
    expect(info.infotexts[3]).toMatch(/Sampler: DDIM, CFG scale: 3,/);
    expect(r.body.parameters["script_name"]).toBe("x/y/z plot");
    // The grid PNG carries the grid's infotext.
    const png = await postJson<{ info: string }>(`${s.base}/sdapi/v1/png-info`, { image: r.body.images[0] });
    expect(png.body.info).toBe(info.infotexts[0]);
  });

  it("runs img2img's axis list: its index 24 is Denoising", async () => {
    const r = await postJson<Generated>(`${s.base}/sdapi/v1/img2img`, {
      prompt: "a blue square",
      init_images: [await pngBase64(64, 64, [200, 40, 40])],
      steps: 4,
      seed: 3,
      script_name: "X/Y/Z plot",
      script_args: args([24, "0.5, 1", []], [0, "", []]),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.images).toHaveLength(1);
    const info = JSON.parse(r.body.info);
    expect(info.infotexts[1]).toMatch(/Denoising strength: 0.5/);
    expect(info.infotexts[2]).toMatch(/Denoising strength: 1/);
  });

  it("varies the sampler knobs: txt2img's 23 is Eta and 13 Sigma Churn, each cell's infotext names its values", async () => {
    const r = await postJson<Generated>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "a red circle",
      sampler_name: "Euler a",
      steps: 3,
      seed: 5,
      script_name: "x/y/z plot",
      script_args: args([23, "0, 0.5", []], [0, "", []]),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const info = JSON.parse(r.body.info);
    expect(info.infotexts[1]).toMatch(/Eta: 0,/);
    expect(info.infotexts[2]).toMatch(/Eta: 0.5,/);
    expect(r.body.images[0]).not.toBe(r.body.images[1]);
    const churn = await postJson<Generated>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "a red circle",
      sampler_name: "Euler",
      steps: 3,
      seed: 5,
      script_name: "x/y/z plot",
      script_args: args([13, "0.5, 1", []], [0, "", []]),
    });
    expect(churn.status, JSON.stringify(churn.body)).toBe(200);
    const churnInfo = JSON.parse(churn.body.info);
    expect(churnInfo.infotexts[1]).toMatch(/Sigma churn: 0.5/);
    expect(churnInfo.infotexts[2]).toMatch(/Sigma churn: 1/);
  });

  it("refuses before running: an axis not offered here, a bad value, an unknown script (422, named)", async () => {
    const sigma = await postJson<Failure>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "cat",
      script_name: "x/y/z plot",
      script_args: args([18, "0.5", []], [0, "", []]),
    });
    expect(sigma.status).toBe(422);
    expect(sigma.body.detail).toMatch(
      /script_args\[0\] \(X type\): the axis "Schedule min sigma" \(18\) is not available here/,
    );
    const steps = await postJson<Failure>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "cat",
      script_name: "x/y/z plot",
      script_args: args([4, "2, lots", []], [0, "", []]),
    });
    expect(steps.status).toBe(422);
    expect(steps.body.detail).toMatch(/X axis \(Steps\): "lots" is not an integer/);
    const other = await postJson<Failure>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "cat",
      script_name: "prompt matrix",
    });
    expect(other.status).toBe(422);
    expect(other.body.detail).toMatch(/Script 'prompt matrix' not found/);
    const jobs = await getJson<{ jobs: unknown[] }>(`${s.base}/api/v1/jobs`);
    expect(jobs.jobs.filter((j) => JSON.stringify(j).includes('"cat"'))).toEqual([]);
  });
});

describe("the X/Y/Z plot and the work budget", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    // One 64 x 64 cell of 2 steps is 0.0082 megapixel-steps: one fits, four do not.
    s = await startServer({ cacheDir: cache.path, workBudget: 0.02 }, { modelPath: defaultModelPath() });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("counts every cell, and refuses a plot whose total is over the budget, with the figure", async () => {
    const r = await postJson<Failure>(`${s.base}/sdapi/v1/txt2img`, {
      prompt: "cat",
      steps: 2,
      width: 64,
      height: 64,
      script_name: "x/y/z plot",
      script_args: args([6, "3,5", []], [4, "2,2", []]),
    });
    expect(r.status).toBe(422);
    expect(r.body.detail).toMatch(
      /this X\/Y\/Z plot asks for 0.0328 megapixel-steps of work over its 4 cells \(2 x 2 x 1\), over this server's limit of 0.02/,
    );
  });
});
