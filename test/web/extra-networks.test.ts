/**
 * The page's LoRA and embedding chips in Chromium: listed from the server's folders, a click writes the tag (or the
 * trigger word) into the prompt being edited, and the job sent carries it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { HAVE_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("the page lists LoRAs and embeddings and inserts them", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-extras-"));
  let server: PageServer | undefined;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    const loraDir = join(work, "loras");
    const embeddingsDir = join(work, "embeddings");
    mkdirSync(loraDir);
    mkdirSync(embeddingsDir);
    copyFileSync(ref("models/sd15-tiny-adapters/lora-kohya.safetensors"), join(loraDir, "lora-kohya.safetensors"));
    copyFileSync(ref("models/sd15-tiny-adapters/ti-a1111.safetensors"), join(embeddingsDir, "ti-a1111.safetensors"));
    server = await startPageServer(work, {
      modelPath: ref("models/sd15-tiny"),
      loadOptions: { loraDir, embeddingsDir },
    });
    ({ base, browser } = server);
  });

  afterAll(async () => {
    await (server ? server.close() : rmSync(work, { recursive: true, force: true }));
  });

  it("a LoRA chip adds <lora:NAME:1> to the prompt, an embedding chip its name to the negative prompt; the job carries both", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    await page.locator("#extras summary").click();
    await page.locator("#lora-list .chip", { hasText: "lora-kohya" }).waitFor();
    expect(await page.locator("#extras-empty").isVisible()).toBe(false);

    await page.fill("#prompt", "a red house");
    await page.locator("#lora-list .chip", { hasText: "lora-kohya" }).click();
    expect(await page.inputValue("#prompt")).toBe("a red house <lora:lora-kohya:1>");
    await page.locator("#negative_prompt").focus();
    await page.locator("#embedding-list .chip", { hasText: "ti-a1111" }).click();
    expect(await page.inputValue("#negative_prompt")).toBe("ti-a1111");

    await page.fill("#steps", "2");
    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.locator("#prompt").press("Control+Enter");
    expect((await posted).postDataJSON()).toMatchObject({
      prompt: "a red house <lora:lora-kohya:1>",
      negative_prompt: "ti-a1111",
    });
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
