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
    // Drawn at or below its own size (a narrow frame), it is scaled smoothly again.
    await page.locator("#output-image").evaluate((i: HTMLImageElement) => (i.style.maxWidth = "48px"));
    await expect.poll(() => rendering(page, "#output-image")).toBe("auto");
    await page.locator("#output-image").evaluate((i: HTMLImageElement) => i.style.removeProperty("max-width"));
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

  it("picks up a job running before a reload at its real step, with no estimate until it has seen steps go by", async () => {
    const { page, errors } = await open();
    // A job another page started: the history lists it at step 3 of 10; its event stream replays that step and
    // breaks off (as after a proxy timeout), after which the page polls, and the job has moved on to step 5.
    const job = {
      id: "job-running",
      state: "running",
      position: null,
      progress: { step: 3, steps: 10 },
      created_at: new Date().toISOString(),
      started_at: new Date().toISOString(),
      finished_at: null,
      model: "tiny-shapes",
      params: { type: "txt2img", prompt: "a small blue star", seed: 1, has_init_image: false, has_mask: false },
      images: [],
      error: null,
    };
    await page.route(/\/api\/v1\/jobs\?limit=/, (r) => r.fulfill({ json: { jobs: [job] } }));
    await page.route(/\/api\/v1\/jobs\/job-running\/events$/, (r) =>
      r.fulfill({
        contentType: "text/event-stream",
        body: `event: running\ndata: {"started_at":"${job.started_at}"}\n\nevent: step\ndata: {"step":3,"steps":10,"batch":0,"batches":1}\n\n`,
      }),
    );
    let polls = 0;
    await page.route(/\/api\/v1\/jobs\/job-running$/, (r) =>
      r.fulfill({ json: { ...job, progress: { step: polls++ === 0 ? 3 : 5, steps: 10 } } }),
    );
    const statuses: string[] = [];
    await page.exposeFunction("recordStatus", (text: string) => statuses.push(text));
    await page.addInitScript(() => {
      document.addEventListener("DOMContentLoaded", () => {
        const status = document.getElementById("status")!;
        const record = (window as unknown as { recordStatus: (t: string) => void }).recordStatus;
        new MutationObserver(() => record(status.textContent ?? "")).observe(status, {
          childList: true,
          characterData: true,
          subtree: true,
        });
      });
    });
    await page.reload();
    await page.locator("#output-frame[data-state=running]").waitFor();
    await expect
      .poll(() => page.textContent("#status"), { timeout: 10_000 })
      .toMatch(/^Step 5 of 10 · about \d+(\.\d)? s left$/);
    expect(statuses).toContain("Step 3 of 10");
    expect(statuses.filter((s) => /Sending|0\.0 s left/.test(s))).toEqual([]);
    expect(await page.textContent("#status")).not.toMatch(/ 0\.0 s left/);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("on a phone (390 x 844) shows the progress and the result right below the Generate button", async () => {
    const context = await server!.browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 3,
      isMobile: true,
      hasTouch: true,
      colorScheme: "dark",
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server!.base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    await page.fill("#prompt", "a big yellow star in the centre, black background");
    await page.fill("#steps", "20");
    await page.locator("#generate").scrollIntoViewIfNeeded();
    await page.locator("#generate").tap();
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    // In page coordinates: the result panel starts just below the button (nothing but the shortcut hint and the
    // gap between panels in between), and once done the button, the image and the status fit on one screen.
    const top = (selector: string) =>
      page.locator(selector).evaluate((el) => el.getBoundingClientRect().top + window.scrollY);
    const bottom = (selector: string) =>
      page.locator(selector).evaluate((el) => el.getBoundingClientRect().bottom + window.scrollY);
    const gap = (await top("#output-frame")) - (await bottom("#generate"));
    expect(gap).toBeGreaterThan(0);
    expect(gap).toBeLessThan(160);
    await page.locator("#generate").scrollIntoViewIfNeeded();
    const inView = (selector: string) =>
      page.locator(selector).evaluate((el) => {
        const r = el.getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight;
      });
    await expect.poll(() => inView("#generate")).toBe(true);
    expect(await inView("#status")).toBe(true);
    expect(await inView("#output-image")).toBe(true);
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ARTIFACTS, "web-phone-result.png"), animations: "disabled" });
    await page.screenshot({
      path: join(ARTIFACTS, "web-phone-result-full.png"),
      fullPage: true,
      animations: "disabled",
    });
    expect(errors).toEqual([]);
    await context.close();
  });
});
