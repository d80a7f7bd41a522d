import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeHub } from "../helpers/fake-hub.js";
import { runCli } from "../helpers/cli.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { freshStore, hubRepos, SD15_REPO, storeEnv, UNET_FP16 } from "../helpers/hub-fixtures.js";

const UNET_KEY = `${SD15_REPO}/${UNET_FP16}`;

describe.skipIf(!HAVE_REFERENCE)("diffuse pull (command line)", () => {
  let hub: FakeHub;
  beforeAll(async () => {
    hub = await FakeHub.start(hubRepos());
  });
  afterAll(async () => hub.close());

  /** Resolves once the download of `file` has `bytes` on disk in the cache's .incomplete file. */
  async function partialReaches(cacheDir: string, sha: string, bytes: number): Promise<string> {
    const partial = join(cacheDir, "models--test-org--sd15-tiny", "blobs", `${sha}.incomplete`);
    for (;;) {
      if (existsSync(partial) && statSync(partial).size >= bytes) return partial;
      await sleep(20);
    }
  }

  it("without a terminal and without --accept-license: exit 2, saying how to accept, nothing downloaded", async () => {
    const store = freshStore(hub.url);
    const r = await runCli(["pull", SD15_REPO], { env: storeEnv(store) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/CreativeML Open RAIL-M licence.*not been accepted.*--accept-license/);
    expect(existsSync(store.cacheDir)).toBe(false);
  });

  it("a pull killed half-way resumes when run again: the second run transfers less than 60% of the file", async () => {
    const store = freshStore(hub.url);
    const env = storeEnv(store);
    const size = hub.sizeOf(SD15_REPO, UNET_FP16);
    const half = Math.floor(size * 0.5);
    hub.stallAfter.set(UNET_KEY, 0.5);
    let child: ChildProcess | undefined;
    const first = runCli(["pull", SD15_REPO, "--accept-license"], { env, onSpawn: (c) => (child = c) });
    const partial = await partialReaches(store.cacheDir, hub.sha256Of(SD15_REPO, UNET_FP16), half);
    child!.kill("SIGKILL");
    const killed = await first;
    hub.stallAfter.clear();
    expect(killed.code).not.toBe(0);
    expect(statSync(partial).size).toBe(half);
    // Nothing where a model is expected: no snapshot until every file is whole.
    expect(existsSync(join(store.cacheDir, "models--test-org--sd15-tiny", "snapshots"))).toBe(false);

    hub.resetCounts();
    const second = await runCli(["pull", SD15_REPO, "--accept-license", "--json"], { env });
    expect(second.stderr).not.toMatch(/error/i);
    expect(second.code).toBe(0);
    expect(hub.bytesServed(SD15_REPO, UNET_FP16)).toBeLessThan(0.6 * size);
    const result = JSON.parse(second.stdout);
    expect(result.downloaded).toContain(UNET_FP16);
    expect(statSync(join(result.path, UNET_FP16)).size).toBe(size);
    expect(
      readdirSync(join(store.cacheDir, "models--test-org--sd15-tiny", "blobs")).filter((b) =>
        b.endsWith(".incomplete"),
      ),
    ).toEqual([]);
  });

  it("Ctrl-C during a download: exit 130, the partial file kept, saying the same command resumes it", async () => {
    const store = freshStore(hub.url);
    hub.stallAfter.set(UNET_KEY, 0.5);
    let child: ChildProcess | undefined;
    const run = runCli(["pull", SD15_REPO, "--accept-license"], { env: storeEnv(store), onSpawn: (c) => (child = c) });
    const partial = await partialReaches(
      store.cacheDir,
      hub.sha256Of(SD15_REPO, UNET_FP16),
      Math.floor(hub.sizeOf(SD15_REPO, UNET_FP16) * 0.5),
    );
    child!.kill("SIGINT");
    const r = await run;
    hub.stallAfter.clear();
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted by SIGINT: the partial download is kept.*run the same command to resume/);
    expect(existsSync(partial)).toBe(true);
  });

  it("--list shows the catalogue: short names, kinds, families, licences", async () => {
    const store = freshStore(hub.url);
    const r = await runCli(["pull", "--list", "--json"], { env: storeEnv(store) });
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; repo: string; license: string; downloaded: boolean }[];
    const names = rows.map((x) => x.name);
    for (const n of [
      "sd-1.5",
      "sd-2.1",
      "sdxl",
      "sdxl-refiner",
      "sd-turbo",
      "sdxl-turbo",
      "lcm-lora-sd15",
      "lcm-lora-sdxl",
      "controlnet-scribble-sd15",
      "taesd",
      "taesdxl",
      "safety-checker",
      "clip-l-tokenizer",
    ]) {
      expect(names).toContain(n);
    }
    expect(rows.find((x) => x.name === "sd-1.5")).toMatchObject({
      license: "creativeml-openrail-m",
      downloaded: false,
    });
  });
});
