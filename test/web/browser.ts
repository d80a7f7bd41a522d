import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { build } from "vite";

/** What the browser tests share: Debian's Chromium driven by playwright-core, and the page built from its sources. */
export const CHROMIUM = process.env.DIFFUSE_CHROMIUM ?? "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const MISSING_CHROMIUM = `${CHROMIUM} not found: browser tests skipped (install Debian's chromium: apt-get install -y chromium)`;
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Builds the page from its sources into `outDir`, so a test sees what the checkout holds rather than a stale web/dist. */
export async function buildPage(outDir: string): Promise<void> {
  await build({ root: join(ROOT, "web"), configFile: join(ROOT, "web/vite.config.ts"), logLevel: "warn", build: { outDir, emptyOutDir: true } });
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
}
