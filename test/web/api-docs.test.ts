/** /docs in Chromium: Swagger UI renders the server's OpenAPI document, with both APIs' sections and routes. */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type TestServer } from "../server/harness.js";
import { HAVE_CHROMIUM, launchChromium } from "./browser.js";

describe.skipIf(!HAVE_CHROMIUM)("the interactive API documentation in a browser", () => {
  let s: TestServer;
  let browser: Browser;
  // No model behind it: the documentation needs none.
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer({}, { modelPath: notAModel.path });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await s?.close();
    notAModel.remove();
  });

  it("shows our API and A1111's as sections, with their routes", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${s.base}/docs`);
    await page.locator(".opblock-tag", { hasText: "AUTOMATIC1111 API" }).waitFor({ timeout: 30_000 });
    expect(await page.locator(".opblock-tag", { hasText: "diffuse API" }).count()).toBe(1);
    expect(await page.locator(".opblock-summary-path", { hasText: "/sdapi/v1/txt2img" }).count()).toBeGreaterThan(0);
    expect(await page.locator(".opblock-summary-path", { hasText: "/api/v1/jobs" }).count()).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    await page.close();
  });
});
