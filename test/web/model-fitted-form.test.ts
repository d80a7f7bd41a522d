/**
 * The form fitted to the loaded model, in Chromium against the embedded model (native 64 px): its native sizes
 * offered as presets, a size the server would refuse refused in the form with the reason before anything is sent,
 * and prompt placeholders from its folder's prompt_examples.json (listed with the model by /api/v1/models), or
 * neutral ones for a model without examples.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { defaultModelPath } from "../../src/default-model.js";
import { HAVE_CHROMIUM, MISSING_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

if (!HAVE_CHROMIUM) console.warn(MISSING_CHROMIUM);

describe.skipIf(!HAVE_CHROMIUM)("the form fitted to the model, in Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-form-"));
  let server: PageServer | undefined;

  beforeAll(async () => {
    server = await startPageServer(work, { modelPath: defaultModelPath() });
  });

  afterAll(async () => {
    await server?.close();
  });

  async function open(): Promise<{ page: Page; errors: string[]; posts: () => number }> {
    const page = await (await server!.browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
    const errors: string[] = [];
    let posts = 0;
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("request", (r) => {
      if (r.method() === "POST" && r.url().endsWith("/api/v1/jobs")) posts++;
    });
    await page.goto(server!.base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    return { page, errors, posts: () => posts };
  }

  it("offers the model's native size and its landscape and portrait shapes as presets, in steps of 8", async () => {
    const { page, errors } = await open();
    const presets = page.locator("#size-presets button");
    // 64 px native: 64x64, and 3:2 / 2:3 at about the same pixel count (78.4 x 52.3 rounded to multiples of 8).
    await expect.poll(() => presets.allTextContents()).toEqual(["64 × 64", "80 × 56", "56 × 80"]);
    await presets.nth(1).click();
    expect([await page.inputValue("#width"), await page.inputValue("#height")]).toEqual(["80", "56"]);
    await presets.nth(2).click();
    expect([await page.inputValue("#width"), await page.inputValue("#height")]).toEqual(["56", "80"]);
    expect(await page.getAttribute("#width", "step")).toBe("8");
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("refuses a size that is not a multiple of 8 or out of range in the form, saying why, and sends nothing", async () => {
    const { page, errors, posts } = await open();
    await page.fill("#prompt", "a red circle");
    await page.fill("#width", "100");
    await expect.poll(() => page.textContent("#size-error")).toBe("Width 100 is not a multiple of 8: use 96 or 104");
    // Ctrl+Enter from the prompt, without leaving the field first, must not send it either.
    await page.locator("#prompt").press("Control+Enter");
    await page.locator(".toast", { hasText: "Width 100 is not a multiple of 8" }).waitFor();
    await page.fill("#width", "4096");
    await expect
      .poll(() => page.textContent("#size-error"))
      .toBe("Width 4096 is larger than 2048, the largest side the server takes");
    await page.fill("#width", "64");
    await page.fill("#height", "32");
    await expect
      .poll(() => page.textContent("#size-error"))
      .toBe("Height 32 is smaller than 64, the smallest side the page offers");
    await page.locator("#generate").click();
    await page.locator(".toast", { hasText: "Height 32 is smaller than 64" }).waitFor();
    expect(posts()).toBe(0);
    // Once fixed, the message goes and Generate sends.
    await page.fill("#height", "64");
    await expect.poll(() => page.isVisible("#size-error")).toBe(false);
    await page.fill("#steps", "1");
    await page.locator("#generate").click();
    await expect.poll(posts).toBe(1);
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  async function openForPrompts(withoutExamples = false): Promise<Page> {
    const page = await (await server!.browser.newContext()).newPage();
    if (withoutExamples)
      await page.route(/\/api\/v1\/models$/, async (r) => {
        const body = (await (await r.fetch()).json()) as { models: Record<string, unknown>[] };
        for (const m of body.models) m["prompt_examples"] = null;
        await r.fulfill({ json: body });
      });
    await page.goto(server!.base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    return page;
  }

  it("shows the embedded model's own example prompts, not a photograph's", async () => {
    const page = await openForPrompts();
    await expect
      .poll(() => page.getAttribute("#prompt", "placeholder"))
      .toBe("a small red circle on the left, blue background");
    expect(await page.getAttribute("#negative_prompt", "placeholder")).toBe("white background");
    await page.context().close();
  });

  it("shows a neutral text for a model without examples", async () => {
    const page = await openForPrompts(true);
    await expect.poll(() => page.getAttribute("#prompt", "placeholder")).toBe("Describe the picture you want");
    expect(await page.getAttribute("#negative_prompt", "placeholder")).toBe("What the picture should not show");
    await page.context().close();
  });
});
