import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { readPngText } from "../../src/image/png-text.js";
import { defaultModelPath } from "../../src/default-model.js";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";

const env = { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-cli-cache-")) };

describe("diffuse grid (the X/Y/Z plot) on the embedded model", () => {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-grid-"));

  it("writes one labelled grid of the cells, with the first cell's infotext and the script's fields", async () => {
    const out = join(dir, "grid.png");
    const r = await runCli(
      [
        "grid",
        "a red circle",
        "--x",
        "cfg=3,7",
        "--y",
        "sampler=Euler a,DDIM",
        "--steps",
        "2",
        "--seed",
        "5",
        "-o",
        out,
        "--cells",
        "--json",
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.grid).toBe(out);
    expect(result.cells).toHaveLength(4);
    // One seed for every cell: the axes alone differ.
    expect(result.seeds).toEqual([5, 5, 5, 5]);
    const meta = await sharp(out).metadata();
    // Four 64 px cells, with room above for the x labels and on the left for the y labels.
    expect(meta.width).toBeGreaterThan(128);
    expect(meta.height).toBeGreaterThan(128);
    const parameters = readPngText(readFileSync(out)).find((c) => c.keyword === "parameters")!.text;
    expect(parameters).toMatch(/^a red circle\nSteps: 2, Sampler: Euler a, CFG scale: 3, Seed: 5, /);
    expect(parameters).toMatch(
      /Script: X\/Y\/Z plot, X Type: CFG Scale, X Values: "3,7", Y Type: Sampler, Y Values: "Euler a,DDIM"/,
    );
    // Each cell's own parameters, in grid order (x fastest), in its file and in the JSON.
    expect(result.infotexts[1]).toMatch(/Sampler: Euler a, CFG scale: 7,/);
    expect(result.infotexts[2]).toMatch(/Sampler: DDIM, CFG scale: 3,/);
    const cell3 = readPngText(readFileSync(result.cells[3])).find((c) => c.keyword === "parameters")!.text;
    expect(cell3).toMatch(/Sampler: DDIM, CFG scale: 7,/);
    // The grid's pixels hold the cells: the bottom-right 64 x 64 is the last cell's image.
    const grid = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    const cell = await sharp(result.cells[3]).raw().toBuffer();
    const w = grid.info.width;
    let differing = 0;
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 64; x++)
        for (let c = 0; c < 3; c++) {
          const g = grid.data[((grid.info.height - 64 + y) * w + (w - 64 + x)) * 3 + c]!;
          if (Math.abs(g - cell[(y * 64 + x) * 3 + c]!) > 8) differing++;
        }
    // The grid carries its own watermark over the cells' pixels: nearly equal, not byte for byte.
    expect(differing).toBeLessThan(64 * 64 * 3 * 0.05);
  });

  it("shows a cell the safety checker flagged as its policy made it: black under block", async () => {
    const out = join(dir, "flagged.png");
    const checker = flagsEverything(mkdtempSync(join(tmpdir(), "diffuse-grid-checker-")));
    const r = await runCli(
      [
        "grid",
        "a red circle",
        "--x",
        "cfg=3,7",
        "--steps",
        "2",
        "--seed",
        "5",
        "--safety-checker",
        checker,
        "--safety-policy",
        "block",
        "--no-watermark",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const grid = await sharp(out).raw().toBuffer({ resolveWithObject: true });
    const w = grid.info.width;
    const at = (x: number, y: number) => [...grid.data.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)];
    // Both cells (the bottom 64 rows) are black; the label band above them is white paper.
    expect(at(w - 128 + 5, grid.info.height - 10)).toEqual([0, 0, 0]);
    expect(at(w - 5, grid.info.height - 10)).toEqual([0, 0, 0]);
    expect(at(w - 1, 0)).toEqual([255, 255, 255]);
    const parameters = readPngText(readFileSync(out)).find((c) => c.keyword === "parameters")!.text;
    expect(parameters).toMatch(/Safety checker: blocked \(block policy\)/);
  });

  it.skipIf(!HAVE_REFERENCE)("runs a Checkpoint name axis, each column on its model", async () => {
    const out = join(dir, "models.png");
    const r = await runCli(
      [
        "grid",
        "a red circle",
        "--x",
        `checkpoint=${defaultModelPath()},${ref("models/sd15-tiny")}`,
        "--y",
        "cfg=3,7",
        "--steps",
        "2",
        "--seed",
        "5",
        "--no-provenance",
        "-o",
        out,
        "--json",
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    // Grid order (x fastest): each column's model named in its cells' infotexts.
    expect(result.infotexts.map((t: string) => /Model: ([^,]+)/.exec(t)?.[1])).toEqual([
      "tiny-shapes",
      "sd15-tiny",
      "tiny-shapes",
      "sd15-tiny",
    ]);
  });

  it("refuses a bad axis value before generating, naming the axis and the value, and writes nothing", async () => {
    const out = join(dir, "bad.png");
    const r = await runCli(["grid", "a cat", "--x", "steps=2,two", "-o", out], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/X axis \(Steps\): "two" is not an integer/);
    expect(r.stderr).not.toMatch(/cell 1 of/);
    expect(existsSync(out)).toBe(false);
    const unknown = await runCli(["grid", "a cat", "--y", "colour=red", "-o", out], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no axis is called "colour"/);
    expect(readdirSync(dir).filter((f) => f.startsWith("bad"))).toEqual([]);
  });
});
