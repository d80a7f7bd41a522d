import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { GenerationAborted } from "../../src/pipeline/generation-aborted.js";
import { findXyzAxis } from "../../src/pipeline/xyz-axes.js";
import { gridInfotext, planXyzPlot, runXyzPlot, type XyzPlotRequest } from "../../src/pipeline/xyz-plot.js";
import { floatValues, integerValues, splitAxisValues } from "../../src/pipeline/xyz-values.js";

const W = "axis";

describe("X/Y/Z plot value text", () => {
  it("splits on commas, trims, and keeps commas inside double quotes", () => {
    expect(splitAxisValues(" Euler a, DPM++ 2M ,DDIM", W)).toEqual(["Euler a", "DPM++ 2M", "DDIM"]);
    expect(splitAxisValues('cat, "red, blue", "say ""hi"""', W)).toEqual(["cat", "red, blue", 'say "hi"']);
    expect(splitAxisValues("", W)).toEqual([]);
  });

  it("refuses an unclosed quote, naming the axis", () => {
    expect(() => splitAxisValues('a, "b', "X axis (Prompt S/R)")).toThrow(/X axis \(Prompt S\/R\).*not closed/);
  });

  it("expands integer ranges as A1111 does: inclusive, with a signed step, or a count", () => {
    expect(integerValues(["1-5"], W)).toEqual([1, 2, 3, 4, 5]);
    expect(integerValues(["1-10 (+3)"], W)).toEqual([1, 4, 7, 10]);
    // Python's range(start, end + 1, step), as A1111 writes it: going down, the end is then left out.
    expect(integerValues(["10-2 (-4)"], W)).toEqual([10, 6]);
    // numpy's linspace, truncated by int().
    expect(integerValues(["1-10 [4]"], W)).toEqual([1, 4, 7, 10]);
    expect(integerValues(["0-10 [3]", "42"], W)).toEqual([0, 5, 10, 42]);
    expect(integerValues(["-1"], W)).toEqual([-1]);
  });

  it("expands decimal ranges: numpy's arange with the end reached, or linspace", () => {
    expect(floatValues(["3-5 (+0.5)"], W)).toEqual([3, 3.5, 4, 4.5, 5]);
    expect(floatValues(["1-2 [3]"], W)).toEqual([1, 1.5, 2]);
    expect(floatValues(["7.5", "1-3"], W)).toEqual([7.5, 1, 2, 3]);
  });

  it("refuses what is not a number, naming the axis and the value", () => {
    expect(() => integerValues(["20", "abc"], "X axis (Steps)")).toThrow(/X axis \(Steps\): "abc" is not an integer/);
    expect(() => integerValues(["2.5"], "Y axis (Steps)")).toThrow(/"2.5" is not an integer/);
    expect(() => floatValues(["1-5 (+0)"], W)).toThrow(/step of 0/);
    expect(() => integerValues(["1-5 [0]"], W)).toThrow(/no values/);
    expect(() => integerValues(["1-100000"], W)).toThrow(/100000 values, over 1000/);
  });
});

describe("X/Y/Z plot axes", () => {
  it("accepts A1111's labels and short forms in any case", () => {
    expect(findXyzAxis("CFG Scale", W).id).toBe("cfgScale");
    expect(findXyzAxis("cfg", W).id).toBe("cfgScale");
    expect(findXyzAxis("SAMPLER", W).id).toBe("sampler");
    expect(findXyzAxis("prompt s/r", W).id).toBe("promptSR");
    expect(findXyzAxis("Var. seed", W).id).toBe("subseed");
    expect(findXyzAxis("schedule", W).id).toBe("schedule");
    expect(findXyzAxis("checkpoint", W).id).toBe("checkpoint");
    expect(findXyzAxis("denoising", W).id).toBe("denoising");
    expect(findXyzAxis("size", W).id).toBe("size");
    expect(() => findXyzAxis("colour", "X axis")).toThrow(/X axis: no axis is called "colour"; use one of .*CFG Scale/);
  });
});

const request = (over: Partial<XyzPlotRequest>): XyzPlotRequest => {
  let next = 1000n;
  return { base: { prompt: "a red cat on a mat", steps: 4, width: 64, height: 64 }, randomSeed: () => next++, ...over };
};

describe("X/Y/Z plot planning", () => {
  it("orders the cells z, then y, then x, indexed x + y * xs + z * xs * ys", async () => {
    const plan = await planXyzPlot(
      request({
        x: { axis: "cfg", values: "3,5" },
        y: { axis: "sampler", values: "Euler a,DDIM" },
        z: { axis: "steps", values: "2,3" },
      }),
    );
    expect(plan.cells.map((c) => [c.iz, c.iy, c.ix])).toEqual([
      [0, 0, 0],
      [0, 0, 1],
      [0, 1, 0],
      [0, 1, 1],
      [1, 0, 0],
      [1, 0, 1],
      [1, 1, 0],
      [1, 1, 1],
    ]);
    expect(plan.cells.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const last = plan.cells[7]!.params;
    expect([last.cfgScale, last.sampler, last.steps]).toEqual([5, "DDIM", 3]);
    expect(plan.x.labels).toEqual(["CFG Scale: 3", "CFG Scale: 5"]);
    expect(plan.y.labels).toEqual(["Euler a", "DDIM"]);
  });

  it("runs a checkpoint axis outermost, as A1111 does with costly axes", async () => {
    const plan = await planXyzPlot(
      request({
        x: { axis: "checkpoint", values: "a.safetensors,b.safetensors" },
        y: { axis: "cfg", values: "3,5" },
        checkpoint: (name) => `/models/${name}`,
      }),
    );
    expect(plan.cells.map((c) => [c.checkpoint, c.params.cfgScale])).toEqual([
      ["/models/a.safetensors", 3],
      ["/models/a.safetensors", 5],
      ["/models/b.safetensors", 3],
      ["/models/b.safetensors", 5],
    ]);
    expect(plan.x.labels).toEqual(["a.safetensors", "b.safetensors"]);
  });

  it("draws a random seed once for every cell, and once per -1 of a Seed axis", async () => {
    const plan = await planXyzPlot(request({ x: { axis: "cfg", values: "3,5,7" } }));
    expect(plan.cells.map((c) => c.params.seed)).toEqual([1000n, 1000n, 1000n]);
    const seeds = await planXyzPlot(request({ x: { axis: "seed", values: "-1, 7, -1" } }));
    // The request's own -1 is drawn first (1000), then each -1 of the axis.
    expect(seeds.cells.map((c) => c.params.seed)).toEqual([1001n, 7n, 1002n]);
    expect(seeds.infotext["Fixed X Values"]).toBe("1001, 7, 1002");
    const kept = await planXyzPlot(request({ x: { axis: "cfg", values: "3,5" }, noFixedSeeds: true }));
    expect(kept.cells.map((c) => c.params.seed)).toEqual([undefined, undefined]);
  });

  it("varies seeds along the axes asked, as A1111's vary_seeds_x/y", async () => {
    const plan = await planXyzPlot(
      request({
        base: { prompt: "cat", seed: 10 },
        x: { axis: "cfg", values: "3,5,7" },
        y: { axis: "steps", values: "2,3" },
        varySeeds: { x: true, y: true },
      }),
    );
    expect(plan.cells.map((c) => c.params.seed)).toEqual([10n, 11n, 12n, 13n, 14n, 15n]);
  });

  it("replaces the first Prompt S/R value by each, in the prompt and the negative prompt", async () => {
    const plan = await planXyzPlot(
      request({
        base: { prompt: "a red cat, red hat", negativePrompt: "red blur" },
        x: { axis: "Prompt S/R", values: "red,blue,green" },
      }),
    );
    expect(plan.cells.map((c) => [c.params.prompt, c.params.negativePrompt])).toEqual([
      ["a red cat, red hat", "red blur"],
      ["a blue cat, blue hat", "blue blur"],
      ["a green cat, green hat", "green blur"],
    ]);
    await expect(planXyzPlot(request({ x: { axis: "sr", values: "dog,wolf" } }))).rejects.toThrow(
      /X axis \(Prompt S\/R\): .*"dog".*neither the prompt nor the negative prompt/,
    );
  });

  it("orders prompt tokens in every permutation", async () => {
    const plan = await planXyzPlot(
      request({ base: { prompt: "cat, hat, mat" }, x: { axis: "Prompt order", values: "cat,mat" } }),
    );
    expect(plan.cells.map((c) => c.params.prompt)).toEqual(["cat, hat, mat", "mat, hat, cat"]);
    expect(plan.x.labels).toEqual(["cat, mat", "mat, cat"]);
  });

  it("refuses bad values before anything runs, naming the axis and value", async () => {
    await expect(planXyzPlot(request({ x: { axis: "cfg", values: "3,seven" } }))).rejects.toThrow(
      /X axis \(CFG Scale\): "seven" is not a number/,
    );
    await expect(planXyzPlot(request({ y: { axis: "sampler", values: "Euler a,Nope" } }))).rejects.toThrow(
      /Y Sampler = "Nope" cannot run: unknown sampler "Nope"/,
    );
    await expect(planXyzPlot(request({ x: { axis: "steps", values: "10,0" } }))).rejects.toThrow(
      /X Steps = "0" cannot run: steps 0 is invalid/,
    );
    await expect(planXyzPlot(request({ x: { axis: "size", values: "64x64,65x64" } }))).rejects.toThrow(
      /X Size = "65x64" cannot run: width 65/,
    );
    await expect(planXyzPlot(request({ z: { axis: "schedule", values: "Karras,Sideways" } }))).rejects.toThrow(
      /Z Schedule type = "Sideways" cannot run/,
    );
    await expect(planXyzPlot(request({ x: { axis: "denoising", values: "0.5" } }))).rejects.toThrow(
      /Denoising axis needs an init image/,
    );
    await expect(planXyzPlot(request({ x: { axis: "hires steps", values: "5" } }))).rejects.toThrow(
      /Hires steps axis changes the hires fix/,
    );
    await expect(
      planXyzPlot(request({ x: { axis: "cfg", values: "3" }, y: { axis: "CFG Scale", values: "4" } })),
    ).rejects.toThrow(/both CFG Scale/);
    await expect(planXyzPlot(request({ x: { axis: "checkpoint", values: "a" } }))).rejects.toThrow(InputError);
    await expect(planXyzPlot(request({ y: { axis: "Sigma Churn", values: "1,-1" } }))).rejects.toThrow(
      /Y Sigma Churn = "-1" cannot run: .*s_churn/i,
    );
  });

  it("varies A1111's sampler knobs: Eta, Sigma Churn, Sigma min, Sigma max, Sigma noise", async () => {
    const plan = await planXyzPlot(
      request({
        x: { axis: "eta", values: "0,0.5" },
        y: { axis: "s churn", values: "0.5" },
        z: { axis: "Sigma noise", values: "0.9" },
      }),
    );
    expect(plan.cells.map((c) => [c.params.eta, c.params.sChurn, c.params.sNoise])).toEqual([
      [0, 0.5, 0.9],
      [0.5, 0.5, 0.9],
    ]);
    expect(plan.x.labels).toEqual(["Eta: 0", "Eta: 0.5"]);
    const bounds = await planXyzPlot(
      request({ x: { axis: "Sigma min", values: "0.1" }, y: { axis: "Sigma max", values: "10,20" } }),
    );
    expect(bounds.cells.map((c) => [c.params.sTmin, c.params.sTmax])).toEqual([
      [0.1, 10],
      [0.1, 20],
    ]);
  });

  it("sets the hires fix's denoising with the hires fix on, and the LoRA's weight with one LoRA", async () => {
    const plan = await planXyzPlot(
      request({
        base: { prompt: "cat", hires: { scale: 2 }, loras: [{ name: "ink", weight: 1 }] },
        x: { axis: "denoising", values: "0.3,0.6" },
        y: { axis: "lora weight", values: "0.5" },
      }),
    );
    expect(plan.cells.map((c) => [c.params.hires?.denoisingStrength, c.params.loras?.[0]?.weight])).toEqual([
      [0.3, 0.5],
      [0.6, 0.5],
    ]);
  });

  it("writes the script's fields into the grid's infotext after the first cell's", async () => {
    const plan = await planXyzPlot(
      request({ x: { axis: "cfg", values: "3,5" }, y: { axis: "sampler", values: "Euler a,DPM++ 2M" } }),
    );
    expect(gridInfotext("cat\nSteps: 4, Seed: 1", plan)).toBe(
      'cat\nSteps: 4, Seed: 1, Script: X/Y/Z plot, X Type: CFG Scale, X Values: "3,5", Y Type: Sampler, Y Values: "Euler a,DPM++ 2M"',
    );
  });
});

describe("X/Y/Z plot run", () => {
  it("runs the cells one at a time, reports cell k of n, and returns results by grid index", async () => {
    const plan = await planXyzPlot(
      request({ x: { axis: "checkpoint", values: "a,b" }, y: { axis: "cfg", values: "3,5" }, checkpoint: (n) => n }),
    );
    const seen: string[] = [];
    const results = await runXyzPlot(plan, async (cell) => `${cell.checkpoint}@${cell.params.cfgScale}`, {
      onCell: (k, n) => seen.push(`${k}/${n}`),
    });
    expect(seen).toEqual(["1/4", "2/4", "3/4", "4/4"]);
    // Grid order: x (checkpoint) fastest.
    expect(results).toEqual(["a@3", "b@3", "a@5", "b@5"]);
  });

  it("stops between cells once cancelled", async () => {
    const plan = await planXyzPlot(request({ x: { axis: "cfg", values: "3,5,7" } }));
    const abort = new AbortController();
    let ran = 0;
    const run = runXyzPlot(
      plan,
      async () => {
        ran++;
        abort.abort();
      },
      { signal: abort.signal },
    );
    await expect(run).rejects.toBeInstanceOf(GenerationAborted);
    expect(ran).toBe(1);
  });
});
