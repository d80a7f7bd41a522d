/**
 * Drawing is a request to use the drawing: a stroke on the sketch switches the job to image-to-image (the "Use sketch"
 * switch turns on where the user sees it, and undoing the stroke turns it back off), and the sketch outlives a reload
 * as the history does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { HAVE_CHROMIUM, startPageServer, stroke, type PageServer } from "./browser.js";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("drawing on the canvas, in Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-sketch-mode-"));
  let server: PageServer | undefined;

  beforeAll(async () => {
    // A model with no scribble ControlNet beside it: the canvas can only be the init image.
    server = await startPageServer(work, { modelPath: ref("models/sd15-tiny") });
  });

  afterAll(async () => {
    await (server ? server.close() : rmSync(work, { recursive: true, force: true }));
  });

  /** The alpha (0-255) of the strokes layer at fractions of its size: what the user drew, without the paper. */
  function inkAt(page: Page, x: number, y: number): Promise<number> {
    return page.evaluate<number>(`(() => {
      const c = document.querySelector("#stage canvas.layer-strokes");
      const d = c.getContext("2d").getImageData(Math.floor(${x} * c.width), Math.floor(${y} * c.height), 1, 1).data;
      return d[3];
    })()`);
  }

  it("turns on Use sketch when a stroke is drawn, off again on undo, sends img2img, and keeps the sketch across a reload", async () => {
    const context = await server!.browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server!.base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    const useSketch = page.getByRole("switch", { name: "Use sketch" });
    expect(await useSketch.isChecked()).toBe(false);
    expect(await page.textContent("#mode-badge")).toBe("txt2img");

    const bar: [number, number][] = [
      [0.3, 0.2],
      [0.3, 0.5],
      [0.3, 0.8],
    ];
    await page.locator("#brush-size").fill("40");
    await stroke(page, bar);
    await expect.poll(() => useSketch.isChecked()).toBe(true);
    expect(await page.textContent("#mode-badge")).toBe("img2img");

    // Undo takes the stroke back, and with it the switch it turned on.
    await page.locator("#undo").click();
    await expect.poll(() => useSketch.isChecked()).toBe(false);
    expect(await page.textContent("#mode-badge")).toBe("txt2img");
    expect(await inkAt(page, 0.3, 0.5)).toBe(0);

    await stroke(page, bar);
    await expect.poll(() => useSketch.isChecked()).toBe(true);
    await page.fill("#prompt", "a dark bar");
    await page.fill("#steps", "2");
    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.locator("#generate").click();
    const body = (await posted).postDataJSON() as Record<string, unknown>;
    expect(body.type).toBe("img2img");
    expect(String(body.init_image)).toMatch(/^data:image\/png;base64,/);
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });

    await page.reload();
    await page.locator("#model-chip[data-state=online]").waitFor();
    await expect.poll(() => inkAt(page, 0.3, 0.5)).toBeGreaterThan(200);
    expect(await inkAt(page, 0.8, 0.5)).toBe(0);
    expect(await useSketch.isChecked()).toBe(true);
    expect(await page.textContent("#mode-badge")).toBe("img2img");
    expect(errors).toEqual([]);
    await context.close();
  });
});
