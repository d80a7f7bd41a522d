/**
 * The web page in Chromium against a server whose safety checker flags every image (block policy): the page shows
 * no preview and says why, then the finished (blocked) image.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { buildApp, type App } from "../../src/server/app.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { buildPage, HAVE_CHROMIUM, launchChromium } from "./browser.js";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("the web page with a safety checker that flags every image", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-safety-"));
  let app: App;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    const webRoot = join(work, "dist");
    await buildPage(webRoot);
    const config = resolveServerConfig({
      modelPath: ref("models/sd15-tiny"),
      loadOptions: { cacheDir: join(work, "cache"), threads: 1, safetyChecker: flagsEverything(join(work, "checker")), safetyPolicy: "block" },
      dataDir: join(work, "data"),
      webRoot,
      port: 0,
      previewIntervalMs: 0,
    });
    app = await buildApp(config);
    base = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("shows no step preview, says the checker withheld it, then the finished image", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 900 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    await page.fill("#prompt", "a red house by a blue lake");
    await page.fill("#steps", "12");
    await page.locator("#prompt").press("Control+Enter");
    const frame = page.locator("#output-frame");
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    expect(await frame.getAttribute("data-previews")).toBeNull();
    expect(await frame.getAttribute("data-preview-withheld")).toBe("safety");
    await expect.poll(() => page.evaluate<boolean>(`(() => { const i = document.querySelector("#output-image"); return !!i && i.complete && i.naturalWidth > 0; })()`)).toBe(true);
    expect(errors).toEqual([]);
  });
});
