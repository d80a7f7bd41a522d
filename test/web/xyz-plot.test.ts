/**
 * The page's "Script: X/Y/Z plot" section in Chromium: the axis types listed as A1111's txt2img list, and a plot of
 * the form's request over CFG Scale shown as one labelled grid, sent as A1111's script_name / script_args.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { HAVE_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

describe.skipIf(!HAVE_CHROMIUM)("the page's X/Y/Z plot", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-xyz-"));
  let server: PageServer | undefined;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    server = await startPageServer(work, { modelPath: defaultModelPath() });
    ({ base, browser } = server);
  }, 180_000);

  afterAll(async () => {
    await (server ? server.close() : rmSync(work, { recursive: true, force: true }));
  });

  it("plots the form's request over the chosen axis and shows the grid", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base);
    await page.locator("#model-chip[data-state=online]").waitFor({ timeout: 60_000 });
    await page.locator("#xyz-section summary").click();
    await page.locator("#xyz-x-type option", { hasText: "CFG Scale" }).waitFor({ state: "attached" });
    // A1111's txt2img order: the index sent is the option's position.
    expect(
      await page.locator("#xyz-x-type option").evaluateAll((o) => o.slice(0, 7).map((e) => e.textContent)),
    ).toEqual(["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale"]);
    await page.fill("#prompt", "a red circle");
    await page.fill("#steps", "2");
    await page.fill("#seed", "5");
    await page.selectOption("#xyz-x-type", { label: "CFG Scale" });
    await page.fill("#xyz-x-values", "3,7");
    const posted = page.waitForRequest((r) => r.url().endsWith("/sdapi/v1/txt2img") && r.method() === "POST");
    await page.locator("#xyz-run").click();
    const body = (await posted).postDataJSON() as { script_name: string; script_args: unknown[]; steps: number };
    expect(body.script_name).toBe("x/y/z plot");
    expect(body.script_args.slice(0, 3)).toEqual([6, "3,7", []]);
    expect(body.steps).toBe(2);
    const grid = page.locator("#xyz-grid");
    await grid.waitFor({ state: "visible", timeout: 60_000 });
    const size = await grid.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]);
    // Two cells side by side, with the labels above: wider than two cells, taller than one.
    const cell = await page.inputValue("#width");
    expect(size[0]).toBeGreaterThanOrEqual(2 * Number(cell));
    expect(size[1]).toBeGreaterThan(Number(cell));
    expect(errors).toEqual([]);
    await page.context().close();
  }, 120_000);
});
