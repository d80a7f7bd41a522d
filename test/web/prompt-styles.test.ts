/**
 * The page's prompt styles in Chromium: listed from styles.csv in the server's data folder, a chip merges its style
 * into both prompts as A1111 does, and the current prompts can be saved as a new style (written to styles.csv).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { HAVE_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("the page's prompt styles", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-styles-"));
  let server: PageServer | undefined;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    mkdirSync(join(work, "data"));
    writeFileSync(
      join(work, "data", "styles.csv"),
      'name,prompt,negative_prompt\r\nframed,"a {prompt}, in a frame",text\r\n',
    );
    server = await startPageServer(work, { modelPath: ref("models/sd15-tiny") });
    ({ base, browser } = server);
  });

  afterAll(async () => {
    await (server ? server.close() : rmSync(work, { recursive: true, force: true }));
  });

  it("a style chip merges the style into both prompts; the prompts can be saved as a style", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base);
    await page.locator("#styles summary").click();
    await page.locator("#style-list .chip", { hasText: "framed" }).waitFor();
    await page.fill("#prompt", "cat");
    await page.fill("#negative_prompt", "blurry");
    await page.locator("#style-list .chip", { hasText: "framed" }).click();
    expect(await page.inputValue("#prompt")).toBe("a cat, in a frame");
    expect(await page.inputValue("#negative_prompt")).toBe("blurry, text");

    page.once("dialog", (d) => void d.accept("mine"));
    await page.locator("#style-save").click();
    await page.locator("#style-list .chip", { hasText: "mine" }).waitFor();
    expect(readFileSync(join(work, "data", "styles.csv"), "utf8")).toBe(
      'name,prompt,negative_prompt\r\nframed,"a {prompt}, in a frame",text\r\nmine,"a cat, in a frame","blurry, text"\r\n',
    );
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
