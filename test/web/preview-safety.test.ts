/**
 * The web page in Chromium against a server whose safety checker flags every image (block policy): the page shows
 * no preview and says why, then the finished (blocked) image.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { HAVE_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("the web page with a safety checker that flags every image", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-safety-"));
  let server: PageServer | undefined;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    server = await startPageServer(work, {
      modelPath: ref("models/sd15-tiny"),
      loadOptions: { safetyChecker: flagsEverything(join(work, "checker")), safetyPolicy: "block" },
      previewIntervalMs: 0,
    });
    ({ base, browser } = server);
  });

  afterAll(async () => {
    await (server ? server.close() : rmSync(work, { recursive: true, force: true }));
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
    await expect
      .poll(() =>
        page.evaluate<boolean>(
          `(() => { const i = document.querySelector("#output-image"); return !!i && i.complete && i.naturalWidth > 0; })()`,
        ),
      )
      .toBe(true);
    expect(errors).toEqual([]);
  });
});
