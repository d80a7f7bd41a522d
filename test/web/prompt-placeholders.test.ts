/**
 * The prompt boxes' placeholders in Chromium: examples that suit the loaded model (its folder's
 * prompt_examples.json, listed with the model by /api/v1/models), and a neutral text for a model without any.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { defaultModelPath } from "../../src/default-model.js";
import { HAVE_CHROMIUM, MISSING_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

if (!HAVE_CHROMIUM) console.warn(MISSING_CHROMIUM);

describe.skipIf(!HAVE_CHROMIUM)("the prompt placeholders in Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-prompts-"));
  let server: PageServer | undefined;

  beforeAll(async () => {
    server = await startPageServer(work, { modelPath: defaultModelPath() });
  });

  afterAll(async () => {
    await server?.close();
  });

  async function open(withoutExamples = false): Promise<Page> {
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
    const page = await open();
    await expect
      .poll(() => page.getAttribute("#prompt", "placeholder"))
      .toBe("a small red circle on the left, blue background");
    expect(await page.getAttribute("#negative_prompt", "placeholder")).toBe("white background");
    await page.context().close();
  });

  it("shows a neutral text for a model without examples", async () => {
    const page = await open(true);
    await expect.poll(() => page.getAttribute("#prompt", "placeholder")).toBe("Describe the picture you want");
    expect(await page.getAttribute("#negative_prompt", "placeholder")).toBe("What the picture should not show");
    await page.context().close();
  });
});
