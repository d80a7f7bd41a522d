/**
 * The page's model picker in Chromium: it lists the checkpoints the server's model store knows, the served one
 * chosen; choosing another switches the server, shows the load, and the page takes the new model once it is up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import type { ModelList } from "../../src/server/api-types.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { HAVE_CHROMIUM, startPageServer, type PageServer } from "./browser.js";

describe.skipIf(!HAVE_REFERENCE || !HAVE_CHROMIUM)("the page's model picker", () => {
  const work = mkdtempSync(join(tmpdir(), "diffuse-web-models-"));
  let server: PageServer | undefined;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    // A ComfyUI installation with two copies of the tiny SD1 model.
    const checkpoints = join(work, "ComfyUI", "models", "checkpoints");
    mkdirSync(checkpoints, { recursive: true });
    for (const name of ["alpha", "beta"])
      cpSync(ref("models/sd15-tiny"), join(checkpoints, name), { recursive: true, dereference: true });
    server = await startPageServer(work, {
      modelPath: join(checkpoints, "alpha"),
      models: {
        cacheDir: join(work, "hf-cache"),
        home: join(work, "home"),
        modelsDirs: [join(work, "ComfyUI")],
        searchDefaults: false,
        hashCacheDir: join(work, "cache"),
      },
    });
    ({ base, browser } = server);
  });

  afterAll(async () => {
    await (server ? server.close() : rmSync(work, { recursive: true, force: true }));
  });

  it("lists the store's checkpoints with the served one chosen; choosing another switches the server and the page follows", async () => {
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base);
    await page.locator("#model-chip[data-state=online]").waitFor();
    const picker = page.locator("#model-picker");
    await picker.locator("option[value=beta]").waitFor({ state: "attached" });
    expect(await picker.locator("option").allTextContents()).toEqual(["alpha", "beta"]);
    expect(await picker.inputValue()).toBe("alpha");

    const put = page.waitForRequest((r) => r.url().endsWith("/api/v1/models/served") && r.method() === "PUT");
    await picker.selectOption("beta");
    expect((await put).postDataJSON()).toEqual({ name: "beta" });
    // The chip names the new model once it has loaded and the page has read its defaults.
    await page.locator("#model-name", { hasText: "beta" }).waitFor({ timeout: 60_000 });
    expect(await picker.inputValue()).toBe("beta");
    expect(await picker.getAttribute("data-state")).toBe("loaded");
    const served = (await (await fetch(`${base}/api/v1/models?wait=false`)).json()) as ModelList;
    expect(served.served).toBe("beta");
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
