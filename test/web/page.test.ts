/**
 * The web page in a real browser: Debian's Chromium driven by playwright-core against the server running
 * in-process with the tiny test model. What a person does: sketch, describe, generate, watch it arrive, and
 * find it again after a reload. Screenshots of the finished page (desktop and phone width) are written to
 * test-artifacts/ for a human to look at.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { buildApp, type App } from "../../src/server/app.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { HAVE_REFERENCE, MISSING_REFERENCE, ref } from "../helpers/fixtures.js";
import { buildPage, HAVE_CHROMIUM, launchChromium, MISSING_CHROMIUM, ROOT, stroke } from "./browser.js";

if (HAVE_REFERENCE && !HAVE_CHROMIUM) console.warn(MISSING_CHROMIUM);
if (!HAVE_REFERENCE) console.warn(`browser tests: ${MISSING_REFERENCE}`);

const ARTIFACTS = join(ROOT, "test-artifacts");
const PROMPT = "a red house by a blue lake, morning light";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("the web page in Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-"));
  let app: App;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    await buildPage(join(work, "dist"));
    ({ app, base } = await serve("data"));
    browser = await launchChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** A server on a free port over its own data folder; the compile cache is shared so the model loads once. */
  async function serve(data: string, token?: string, model = "sd15-tiny"): Promise<{ app: App; base: string }> {
    const config = resolveServerConfig({
      modelPath: ref("models", model),
      loadOptions: { cacheDir: join(work, "cache"), threads: 1 },
      dataDir: join(work, data),
      webRoot: join(work, "dist"),
      port: 0,
      token,
      // Every step's preview, so the page has previews to show even when the tiny model takes milliseconds.
      previewIntervalMs: 0,
    });
    const app = await buildApp(config);
    return { app, base: await app.fastify.listen({ host: "127.0.0.1", port: 0 }) };
  }

  /** A page with its errors collected, so a script error fails the test instead of passing unnoticed. */
  async function open(
    options: Parameters<Browser["newContext"]>[0] = {},
    url = base,
  ): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({
      viewport: { width: 1440, height: 1000 },
      colorScheme: "dark",
      ...options,
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(url);
    // The model chip turns online once /api/v1/models answered, i.e. the model loaded and the page is wired.
    await page.locator("#model-chip[data-state=online]").waitFor();
    return { page, errors };
  }

  /** Whether an <img> matched by `selector` has finished loading real pixels. */
  function loaded(page: Page, selector: string): Promise<boolean> {
    return page.evaluate<boolean>(
      `(() => { const i = document.querySelector(${JSON.stringify(selector)}); return !!i && i.complete && i.naturalWidth > 0; })()`,
    );
  }

  it("shows SDXL's second prompt fields for an SDXL model only, and sends what is typed there", async () => {
    const sd1 = await open();
    expect(await sd1.page.locator("#prompt_2").isVisible()).toBe(false);
    await sd1.page.context().close();

    const xl = await serve("data-sdxl", undefined, "sdxl-tiny");
    try {
      const { page, errors } = await open({}, xl.base);
      await expect.poll(() => page.locator("#prompt_2").isVisible()).toBe(true);
      expect(await page.locator("#negative_prompt_2").isVisible()).toBe(true);
      await page.fill("#prompt", PROMPT);
      await page.fill("#prompt_2", "watercolour, soft light");
      await page.fill("#steps", "2");
      const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
      await page.locator("#prompt").press("Control+Enter");
      const body = (await posted).postDataJSON() as Record<string, unknown>;
      expect(body).toMatchObject({ type: "txt2img", prompt: PROMPT, prompt_2: "watercolour, soft light" });
      // An empty second negative prompt is left out: the server then uses the negative prompt.
      expect(body).not.toHaveProperty("negative_prompt_2");
      await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
      await page.screenshot({ path: join(ARTIFACTS, "web-page-sdxl.png"), animations: "disabled" });
      expect(errors).toEqual([]);
      await page.context().close();
    } finally {
      await xl.app.close();
    }
  });

  it("starts from an LCM model's own steps, sampler and guidance (4, LCM, 8.5)", async () => {
    const lcm = await serve("data-lcm", undefined, "lcm-tiny");
    try {
      const { page, errors } = await open({}, lcm.base);
      await expect.poll(() => page.inputValue("#steps")).toBe("4");
      expect(await page.inputValue("#sampler_name")).toBe("lcm");
      expect(await page.inputValue("#cfg_scale")).toBe("8.5");
      expect(await page.locator("#prompt_2").isVisible()).toBe(false);
      expect(errors).toEqual([]);
      await page.context().close();
    } finally {
      await lcm.app.close();
    }
  });

  it("sketch + prompt, Ctrl+Enter: progress with previews, the image in the history, still there after a reload", async () => {
    const { page, errors } = await open();
    await expect.poll(() => page.locator("#sampler_name option").count()).toBeGreaterThan(1);
    // The tiny model's native size is 64 px; the page takes it from /api/v1/models.
    expect(await page.inputValue("#width")).toBe("64");

    await stroke(page, [
      [0.1, 0.75],
      [0.3, 0.45],
      [0.5, 0.6],
      [0.75, 0.3],
      [0.9, 0.4],
    ]);
    await page.getByRole("radio", { name: "Red" }).check();
    await page.locator("#brush-size").fill("40");
    await stroke(page, [
      [0.25, 0.2],
      [0.3, 0.25],
      [0.2, 0.3],
    ]);
    await page.getByRole("radio", { name: "Blue" }).check();
    await stroke(page, [
      [0.05, 0.9],
      [0.5, 0.92],
      [0.95, 0.88],
    ]);
    await page.getByRole("switch", { name: "Use sketch" }).check();
    await expect.poll(() => page.textContent("#mode-badge")).toBe("img2img");

    await page.fill("#prompt", PROMPT);
    await page.fill("#steps", "8");
    await page.fill("#seed", "1234");
    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.locator("#prompt").press("Control+Enter");

    const body = (await posted).postDataJSON() as Record<string, unknown>;
    expect(body).toMatchObject({
      type: "img2img",
      prompt: PROMPT,
      steps: 8,
      seed: 1234,
      width: 64,
      height: 64,
      denoising_strength: 0.75,
    });
    expect(String(body.init_image)).toMatch(/^data:image\/png;base64,/);

    const frame = page.locator("#output-frame");
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    // Strength 0.75 of 8 steps runs 6; the last step event reports the whole run, and previews arrived.
    expect(Number(await frame.getAttribute("data-step"))).toBe(Number(await frame.getAttribute("data-steps")));
    expect(Number(await frame.getAttribute("data-steps"))).toBeGreaterThan(0);
    expect(Number(await frame.getAttribute("data-previews"))).toBeGreaterThan(0);
    expect(await page.getAttribute("#progress-bar", "aria-valuenow")).toBe("100");
    expect(await page.textContent("#status")).toMatch(/Done in .* seed 1234/);
    await expect.poll(() => loaded(page, "#output-image")).toBe(true);

    const card = page.locator("#gallery li.card[data-image-id]");
    await expect.poll(() => card.count()).toBe(1);
    const imageId = await card.first().getAttribute("data-image-id");
    expect(await card.first().locator(".card-prompt").textContent()).toBe(PROMPT);
    expect(await card.first().locator(".card-meta").textContent()).toContain("seed 1234");
    await expect.poll(() => loaded(page, "#gallery li.card img")).toBe(true);
    // The reuse button offers the seed that was just used.
    expect(await page.getAttribute("#seed-reuse", "aria-label")).toContain("1234");

    await page.screenshot({ path: join(ARTIFACTS, "web-page.png"), fullPage: true, animations: "disabled" });

    await page.reload();
    await page.locator("#model-chip[data-state=online]").waitFor();
    await expect.poll(() => card.count()).toBe(1);
    expect(await card.first().getAttribute("data-image-id")).toBe(imageId);
    await expect.poll(() => loaded(page, "#gallery li.card img")).toBe(true);
    // The prompt survives the reload too (the form remembers what was typed).
    expect(await page.inputValue("#prompt")).toBe(PROMPT);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("a mask painted over the sketch makes an inpainting job, and history images go back to the canvas and the form", async () => {
    const { page, errors } = await open();
    const first = page.locator("#gallery li.card[data-image-id]").first();
    await first.waitFor();

    await first.getByRole("button", { name: "Send to canvas" }).click();
    await expect.poll(() => page.isChecked("#use-sketch")).toBe(true);
    await page.fill("#prompt", "");
    await first.getByRole("button", { name: "Use these settings" }).click();
    expect(await page.inputValue("#prompt")).toBe(PROMPT);
    expect(await page.inputValue("#seed")).toBe("1234");

    await page.getByRole("radio", { name: "Mask" }).check();
    await stroke(page, [
      [0.3, 0.3],
      [0.7, 0.3],
      [0.7, 0.7],
      [0.3, 0.7],
    ]);
    await expect.poll(() => page.textContent("#mode-badge")).toBe("inpaint");
    // Undo takes the mask stroke back: the job would be img2img again.
    await page.getByRole("button", { name: "Undo" }).click();
    await expect.poll(() => page.textContent("#mode-badge")).toBe("img2img");
    await stroke(page, [
      [0.3, 0.3],
      [0.7, 0.3],
      [0.7, 0.7],
      [0.3, 0.7],
    ]);
    await expect.poll(() => page.textContent("#mode-badge")).toBe("inpaint");

    await page.fill("#seed", "77");
    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.getByRole("button", { name: /Generate/ }).click();
    const body = (await posted).postDataJSON() as Record<string, unknown>;
    expect(body.type).toBe("inpaint");
    expect(String(body.mask)).toMatch(/^data:image\/png;base64,/);
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator("#gallery li.card[data-image-id]").count()).toBe(2);
    expect(await page.locator("#gallery li.card .card-meta").first().textContent()).toContain("inpaint");
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("works at a phone's width (375 px): no sideways scrolling, drawing by touch, generating by tap", async () => {
    const { page, errors } = await open({
      viewport: { width: 375, height: 812 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    await page.locator("#gallery li.card[data-image-id]").first().waitFor();
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(375);
    // Drawing works with a finger too.
    await page.locator("#stage").scrollIntoViewIfNeeded();
    const box = (await page.locator("#stage").boundingBox())!;
    await page.touchscreen.tap(box.x + box.width / 2, box.y + box.height / 2);
    await expect.poll(() => page.isEnabled("#undo")).toBe(true);
    // And so does generating, with a tap on the button (no keyboard on a phone).
    await page.fill("#prompt", "a small boat on a calm sea");
    await page.getByRole("button", { name: /Generate/ }).tap();
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    await expect.poll(() => loaded(page, "#output-image")).toBe(true);
    await expect.poll(() => page.locator("#gallery li.card[data-image-id]").count()).toBe(3);
    await expect.poll(() => loaded(page, "#gallery li.card img")).toBe(true);
    expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(ARTIFACTS, "web-page-phone.png"), fullPage: true, animations: "disabled" });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("asks once for the token of a protected server, sends it with every call, and keeps it across a reload", async () => {
    const TOKEN = "web-test-token-0123";
    const secured = await serve("data-token", TOKEN);
    try {
      // The page can only ask for a token if the browser can load it without one; the API stays protected.
      expect((await fetch(`${secured.base}/`)).status).toBe(200);
      expect((await fetch(`${secured.base}/api/v1/jobs`)).status).toBe(401);
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      await page.goto(secured.base);
      const dialog = page.locator("#token-dialog[open]");
      await dialog.waitFor();
      await page.fill("#token", "not-the-token");
      await page.getByRole("button", { name: "Connect" }).click();
      await expect.poll(() => page.textContent(".token-reason")).toBe("That token was not accepted.");
      await page.fill("#token", TOKEN);
      await page.getByRole("button", { name: "Connect" }).click();
      await page.locator("#model-chip[data-state=online]").waitFor();
      expect(await dialog.count()).toBe(0);

      await page.fill("#prompt", "a lighthouse");
      await page.fill("#steps", "2");
      await page.keyboard.press("Control+Enter");
      await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
      // <img> loads cannot carry the header, so images arrive as blobs fetched with it.
      expect(await page.getAttribute("#output-image", "src")).toMatch(/^blob:/);
      await expect.poll(() => loaded(page, "#gallery li.card img")).toBe(true);

      await page.reload();
      await page.locator("#model-chip[data-state=online]").waitFor();
      expect(await dialog.count()).toBe(0);
      await expect.poll(() => page.locator("#gallery li.card[data-image-id]").count()).toBe(1);
      await context.close();
    } finally {
      await secured.app.close();
    }
  });

  it("sends a seed past 2^53 exactly (as a string), shows the one that comes back exactly, and keeps the seed box in range", async () => {
    const { page, errors } = await open();
    await page.locator("#gallery li.card[data-image-id]").first().waitFor();
    const seed = page.locator("#seed");
    // Past either end the box goes to that end, as the number boxes do; what is no integer becomes -1 (random).
    await seed.fill("99999999999999999999999");
    await seed.blur();
    expect(await seed.inputValue()).toBe("18446744073709551615");
    await seed.fill("12 apples");
    await seed.blur();
    expect(await seed.inputValue()).toBe("-1");

    await page.fill("#prompt", "a lighthouse");
    await page.fill("#steps", "2");
    await page.getByRole("switch", { name: "Use sketch" }).uncheck();
    await seed.fill("18446744073709551615");
    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.getByRole("button", { name: /Generate/ }).click();
    expect((await posted).postData()).toContain('"seed":"18446744073709551615"');
    await page.locator("#output-frame[data-state=done]").waitFor({ timeout: 60_000 });
    expect(await page.textContent("#status")).toMatch(/Done in .* seed 18446744073709551615/);
    // The history is refreshed after the result shows: wait for it rather than race it.
    await expect
      .poll(() => page.locator("#gallery li.card .card-meta").first().textContent())
      .toContain("seed 18446744073709551615");
    expect(await page.getAttribute("#seed-reuse", "aria-label")).toContain("18446744073709551615");

    await seed.fill("5");
    await page.getByRole("button", { name: "Reuse the last seed" }).click();
    expect(await seed.inputValue()).toBe("18446744073709551615");
    await seed.fill("5");
    await page
      .locator("#gallery li.card[data-image-id]")
      .first()
      .getByRole("button", { name: "Use these settings" })
      .click();
    expect(await seed.inputValue()).toBe("18446744073709551615");
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
