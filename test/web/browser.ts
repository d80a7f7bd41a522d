import { cpSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { build } from "vite";
import type { LoadOptions } from "../../src/pipeline/load-pipeline.js";
import { buildApp, type App } from "../../src/server/app.js";
import { resolveServerConfig, type ServerConfigInput } from "../../src/server/config.js";
import { filesStamp } from "../helpers/compiled-cli.js";

/** What the browser tests share: Debian's Chromium driven by playwright-core, and the page built from its sources. */
export const CHROMIUM = process.env.DIFFUSE_CHROMIUM ?? "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const MISSING_CHROMIUM = `${CHROMIUM} not found: browser tests skipped (install Debian's chromium: apt-get install -y chromium)`;
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Puts the page built from its sources into `outDir`, so a test sees what the checkout holds rather than a stale
 * web/dist. The build (about a second, for each of the browser test files) is made once into .test-web/ and made
 * again whenever a file of web/ or src/ (which the page imports from) changed; each test gets its own copy.
 */
export async function buildPage(outDir: string): Promise<void> {
  const built = join(ROOT, ".test-web");
  const stamp = join(built, ".sources");
  const sources = filesStamp([join(ROOT, "web"), join(ROOT, "src")], () => true, [join(ROOT, "web/dist")]);
  if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== sources) {
    // Built into a private folder and renamed into place, so a concurrent run never sees half a build.
    const tmp = `${built}.${process.pid}.tmp`;
    await build({
      root: join(ROOT, "web"),
      configFile: join(ROOT, "web/vite.config.ts"),
      logLevel: "warn",
      build: { outDir: tmp, emptyOutDir: true },
    });
    writeFileSync(join(tmp, ".sources"), sources);
    rmSync(built, { recursive: true, force: true });
    try {
      renameSync(tmp, built);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another run put its build in place first
    }
  }
  rmSync(outDir, { recursive: true, force: true });
  cpSync(built, outDir, { recursive: true, filter: (p) => p !== stamp });
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
}

/** A pen stroke on the page's canvas (#stage) through the given points, in fractions of the canvas. */
export async function stroke(page: Page, points: [number, number][]): Promise<void> {
  const box = (await page.locator("#stage").boundingBox())!;
  const at = ([x, y]: [number, number]) => [box.x + x * box.width, box.y + y * box.height] as const;
  await page.mouse.move(...at(points[0]!));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 6 });
  await page.mouse.up();
}

/** The page built from its sources, served by a server on a loopback port, and Chromium to look at it. */
export interface PageServer {
  readonly app: App;
  readonly base: string;
  readonly browser: Browser;
  /** Stops the browser and the server and removes the work folder. */
  close(): Promise<void>;
}

/**
 * Builds the page into `work/dist`, starts a server on a free loopback port with its history and compile cache under
 * `work` (one thread; `input` adds to or overrides these) and launches Chromium.
 */
export async function startPageServer(
  work: string,
  input: Partial<Omit<ServerConfigInput, "loadOptions">> & { modelPath: string; loadOptions?: LoadOptions },
): Promise<PageServer> {
  await buildPage(join(work, "dist"));
  const app = await buildApp(
    resolveServerConfig({
      dataDir: join(work, "data"),
      webRoot: join(work, "dist"),
      port: 0,
      ...input,
      loadOptions: { cacheDir: join(work, "cache"), threads: 1, ...input.loadOptions },
    }),
  );
  const base = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
  const browser = await launchChromium();
  return {
    app,
    base,
    browser,
    async close() {
      await browser.close();
      await app.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
