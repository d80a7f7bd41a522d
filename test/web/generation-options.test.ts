/**
 * A1111's everyday options in the page, in Chromium against the embedded model (native 64 px): the schedule type
 * beside the sampler (only the types the sampler takes), the hires fix, the variation seed and the inpainting
 * options (shown with a mask only). Each is sent as the API field it maps to, lands in the image's infotext, is
 * kept across a reload and comes back from a history image. Screenshots with the sections open (desktop and
 * phone) go to test-artifacts/ for a person to look at.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { defaultModelPath } from "../../src/default-model.js";
import type { JobList } from "../../src/server/api-types.js";
import { HAVE_CHROMIUM, MISSING_CHROMIUM, ROOT, startPageServer, stroke, type PageServer } from "./browser.js";

if (!HAVE_CHROMIUM) console.warn(MISSING_CHROMIUM);

const ARTIFACTS = join(ROOT, "test-artifacts");

describe.skipIf(!HAVE_CHROMIUM)("A1111's generation options in the page, in Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-options-"));
  let server: PageServer | undefined;

  beforeAll(async () => {
    server = await startPageServer(work, { modelPath: defaultModelPath() });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await server?.close();
  });

  async function open(viewport = { width: 1440, height: 1000 }): Promise<{ page: Page; errors: string[] }> {
    const page = await (await server!.browser.newContext({ viewport, colorScheme: "dark" })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(server!.base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    // The upscalers arrive on their own request; "Latent (bicubic)" is one of A1111's latent modes.
    await page.locator("#hr_upscaler option[value='Latent (bicubic)']").waitFor({ state: "attached" });
    return { page, errors };
  }

  const options = (page: Page, select: string) =>
    page.locator(`${select} option`).evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).text));

  it("offers the schedule types of the chosen sampler only, Automatic first", async () => {
    const { page, errors } = await open();
    await page.selectOption("#sampler_name", { label: "Euler" });
    // Every type the server has (GET /sdapi/v1/schedulers, in its order: Automatic, Uniform, Karras, ...).
    const all = ((await (await fetch(`${server!.base}/sdapi/v1/schedulers`)).json()) as { label: string }[]).map(
      (t) => t.label,
    );
    expect(all.slice(0, 3)).toEqual(["Automatic", "Uniform", "Karras"]);
    expect(await options(page, "#scheduler")).toEqual(all);
    await page.selectOption("#scheduler", "Karras");
    // DDIM walks its own timestep grid: Automatic only, and the choice falls back to it.
    await page.selectOption("#sampler_name", { label: "DDIM" });
    expect(await options(page, "#scheduler")).toEqual(["Automatic"]);
    expect(await page.inputValue("#scheduler")).toBe("Automatic");
    expect(await page.isDisabled("#scheduler")).toBe(true);
    // The hires pass: "Use same scheduler" only where its sampler takes the first pass's type (DDIM takes no Karras).
    await page.selectOption("#sampler_name", { label: "Euler" });
    await page.selectOption("#scheduler", "Karras");
    await page.locator("#hires-section summary").click();
    await page.selectOption("#hr_sampler_name", { label: "DDIM" });
    expect(await options(page, "#hr_scheduler")).toEqual(["Automatic"]);
    await page.selectOption("#hr_sampler_name", { label: "Euler a" });
    expect(await options(page, "#hr_scheduler")).toEqual(["Use same scheduler", ...all]);
    // The type the hires pass had stays while its sampler takes it.
    expect(await page.inputValue("#hr_scheduler")).toBe("Automatic");
    await page.selectOption("#hr_scheduler", "");
    await page.selectOption("#hr_sampler_name", { label: "DDIM" });
    expect(await page.inputValue("#hr_scheduler")).toBe("Automatic");
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("sends the schedule type, variation seed and hires fix as A1111's fields; the infotext has them; a history image gives them back", async () => {
    const { page, errors } = await open();
    await page.fill("#prompt", "a red circle");
    await page.fill("#steps", "2");
    await page.fill("#seed", "5");
    await page.selectOption("#sampler_name", { label: "Euler" });
    await page.selectOption("#scheduler", "Karras");
    await page.locator("#variation-section summary").click();
    await page.fill("#subseed", "77");
    await page.fill("#subseed_strength", "0.3");
    await page.locator("#hires-section summary").click();
    await page.locator("#enable_hr").check();
    await page.selectOption("#hr_upscaler", "Latent (bicubic)");
    await page.fill("#hr_second_pass_steps", "1");
    await page.fill("#hr_denoising_strength", "0.6");
    await page.fill("#hr_scale", "2");
    await page.fill("#hr_prompt", "a red circle, sharp");
    // Both sections say they are in use while closed.
    expect(await page.getAttribute("#hires-section", "data-on")).toBe("");
    expect(await page.getAttribute("#variation-section", "data-on")).toBe("");

    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.locator("#generate").click();
    const body = (await posted).postDataJSON() as Record<string, unknown>;
    expect(body).toMatchObject({
      type: "txt2img",
      sampler_name: "euler",
      scheduler: "Karras",
      subseed: 77,
      subseed_strength: 0.3,
      enable_hr: true,
      hr_upscaler: "Latent (bicubic)",
      hr_scale: 2,
      hr_second_pass_steps: 1,
      denoising_strength: 0.6,
      hr_prompt: "a red circle, sharp",
    });
    // Unset options are left out, not sent as empty values.
    for (const key of ["hr_resize_x", "hr_resize_y", "hr_sampler_name", "hr_negative_prompt", "mask_blur"])
      expect(body).not.toHaveProperty(key);
    await page.locator("#output-frame:is([data-state=done], [data-state=failed])").waitFor({ timeout: 100_000 });
    expect(await page.textContent("#status")).not.toMatch(/fail|error/i);

    const { jobs } = (await (await fetch(`${server!.base}/api/v1/jobs?limit=1`)).json()) as JobList;
    const infotext = jobs[0]!.images[0]!.infotext;
    expect(infotext).toContain("Schedule type: Karras");
    expect(infotext).toContain("Variation seed: 77");
    expect(infotext).toContain("Variation seed strength: 0.3");
    expect(infotext).toContain("Hires upscale: 2");
    expect(infotext).toContain("Hires upscaler: Latent (bicubic)");
    expect(infotext).toContain("Size: 64x64");
    // The hires pass made the image twice the first pass's size.
    expect(
      await page
        .locator("#output-image")
        .evaluate((i) => [(i as HTMLImageElement).naturalWidth, (i as HTMLImageElement).naturalHeight]),
    ).toEqual([128, 128]);

    // The image's details say it too.
    await page.locator("#gallery li.card[data-image-id] .card-thumb").first().click();
    await expect.poll(() => page.textContent("#viewer-params")).toContain("Schedule typeKarras");
    const details = await page.textContent("#viewer-params");
    expect(details).toContain("Variation seed77 at strength 0.3");
    expect(details).toContain("Hires. fixupscale by 2, Latent (bicubic), denoising 0.6");
    await page.locator("#viewer-close").click();

    // Another setting everywhere, then the history image's own settings back.
    await page.selectOption("#scheduler", "Automatic");
    await page.fill("#subseed_strength", "0");
    await page.fill("#subseed", "-1");
    await page.locator("#enable_hr").uncheck();
    await page.selectOption("#hr_upscaler", "Latent");
    await page.fill("#hr_denoising_strength", "0.9");
    await page.fill("#hr_prompt", "");
    await page
      .locator("#gallery li.card[data-image-id]")
      .first()
      .getByRole("button", { name: "Use these settings" })
      .click();
    expect(await page.inputValue("#scheduler")).toBe("Karras");
    expect(await page.inputValue("#subseed")).toBe("77");
    expect(await page.inputValue("#subseed_strength")).toBe("0.3");
    expect(await page.isChecked("#enable_hr")).toBe(true);
    expect(await page.inputValue("#hr_upscaler")).toBe("Latent (bicubic)");
    expect(await page.inputValue("#hr_second_pass_steps")).toBe("1");
    expect(await page.inputValue("#hr_denoising_strength")).toBe("0.6");
    expect(await page.inputValue("#hr_prompt")).toBe("a red circle, sharp");
    // The hires fix's strength is not the sketch's: that one keeps its own value.
    expect(await page.inputValue("#denoising_strength")).toBe("0.75");
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("keeps the sampler, schedule type, upscaler and the other options across a reload", async () => {
    const { page, errors } = await open();
    await page.selectOption("#sampler_name", { label: "DPM++ 2M" });
    await page.selectOption("#scheduler", "Exponential");
    await page.locator("#hires-section summary").click();
    await page.locator("#enable_hr").check();
    await page.selectOption("#hr_upscaler", "Lanczos");
    await page.selectOption("#hr_sampler_name", { label: "Euler a" });
    await page.selectOption("#hr_scheduler", "Simple");
    await page.fill("#hr_resize_x", "96");
    await page.locator("#variation-section summary").click();
    await page.fill("#seed_resize_from_w", "48");
    await page.fill("#seed_resize_from_h", "56");
    // Leaving the last box commits it, as a person moving on would.
    await page.locator("#seed_resize_from_h").press("Tab");
    await page.reload();
    await page.locator("#model-chip[data-state=online]").waitFor();
    await page.locator("#hr_upscaler option[value='Lanczos']").waitFor({ state: "attached" });
    await expect.poll(() => page.inputValue("#sampler_name")).toBe("dpm++2m");
    expect(await page.inputValue("#scheduler")).toBe("Exponential");
    expect(await page.isChecked("#enable_hr")).toBe(true);
    await expect.poll(() => page.inputValue("#hr_upscaler")).toBe("Lanczos");
    expect(await page.inputValue("#hr_sampler_name")).toBe("euler-a");
    expect(await page.inputValue("#hr_scheduler")).toBe("Simple");
    expect(await page.inputValue("#hr_resize_x")).toBe("96");
    expect([await page.inputValue("#seed_resize_from_w"), await page.inputValue("#seed_resize_from_h")]).toEqual([
      "48",
      "56",
    ]);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("shows the inpainting options once a mask is painted, sends them with it, and no hires fix with a sketch", async () => {
    const { page, errors } = await open();
    await page.fill("#prompt", "a red circle");
    await page.fill("#steps", "2");
    await page.locator("#hires-section summary").click();
    await page.locator("#enable_hr").check();
    expect(await page.isVisible("#inpaint-section")).toBe(false);
    await page.locator("#use-sketch").check({ force: true });
    // (The embedded model's scribble ControlNet may join it: "img2img + scribble".)
    await expect.poll(() => page.textContent("#mode-badge")).toMatch(/^img2img/);
    expect(await page.isVisible("#inpaint-section")).toBe(false);
    // The hires fix says why it will not be sent.
    expect(await page.isVisible("#hires-note")).toBe(true);

    await page.getByRole("radio", { name: "Mask" }).check();
    await stroke(page, [
      [0.3, 0.3],
      [0.7, 0.3],
      [0.7, 0.7],
    ]);
    await expect.poll(() => page.textContent("#mode-badge")).toMatch(/^inpaint/);
    expect(await page.isVisible("#inpaint-section")).toBe(true);
    await page.locator("#inpaint-section summary").click();
    await page.fill("#mask_blur", "8");
    await page.selectOption("#inpainting_fill", "latent noise");
    await page.selectOption("#inpaint_full_res", { label: "Only masked" });
    await page.fill("#inpaint_full_res_padding", "16");
    await page.selectOption("#inpainting_mask_invert", { label: "Inpaint not masked" });

    // Screenshots with every section open, for a person to look at.
    await page.locator("#variation-section summary").click();
    await page.screenshot({ path: join(ARTIFACTS, "web-options-desktop.png"), fullPage: true, animations: "disabled" });

    const posted = page.waitForRequest((r) => r.url().endsWith("/api/v1/jobs") && r.method() === "POST");
    await page.locator("#generate").click();
    const body = (await posted).postDataJSON() as Record<string, unknown>;
    expect(body).toMatchObject({
      type: "inpaint",
      mask_blur: 8,
      inpainting_fill: "latent noise",
      inpaint_full_res: true,
      inpaint_full_res_padding: 16,
      inpainting_mask_invert: true,
    });
    expect(body).not.toHaveProperty("enable_hr");
    await page.locator("#output-frame:is([data-state=done], [data-state=failed])").waitFor({ timeout: 100_000 });
    expect(await page.textContent("#status")).not.toMatch(/fail|error/i);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("fits a phone's width with the sections open (no sideways scrolling)", async () => {
    const { page, errors } = await open({ width: 390, height: 844 });
    for (const id of ["variation-section", "hires-section"]) await page.locator(`#${id} summary`).click();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page
      .locator(".compose")
      .screenshot({ path: join(ARTIFACTS, "web-options-phone.png"), animations: "disabled" });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
