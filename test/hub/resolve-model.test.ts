import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { resolveModelPath } from "../../src/hub/resolve-model.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { handMadeCacheRepo } from "../helpers/hub-fixtures.js";

/** A store whose config.json names an A1111 installation holding the tiny SD1 checkpoint, and a cache holding a repository. */
function setUp() {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-resolve-"));
  const webui = join(dir, "webui");
  mkdirSync(join(webui, "models", "Stable-diffusion", "sub"), { recursive: true });
  const ckpt = join(webui, "models", "Stable-diffusion", "sub", "tiny.safetensors");
  symlinkSync(ref("models/sd15-tiny.ldm.safetensors"), ckpt);
  const home = join(dir, "home");
  mkdirSync(home);
  writeFileSync(join(home, "config.json"), JSON.stringify({ modelsDirs: [webui] }));
  const cacheDir = join(dir, "hf");
  const { snapshot } = handMadeCacheRepo(cacheDir, "someone/sd15-tiny", ref("models/sd15-tiny"));
  const opts = { cacheDir, home, offline: true, userHome: join(dir, "user"), hashCacheDir: join(dir, "hashes") };
  return { dir, ckpt, snapshot, opts, home };
}

describe.skipIf(!HAVE_REFERENCE)("--model NAME", () => {
  it("finds a path, a repository in the cache, an A1111 name from DIFFUSE_HOME/config.json's folders, its 'name [hash]' and short hash", async () => {
    const { ckpt, snapshot, opts } = setUp();
    expect(await resolveModelPath(ckpt, opts)).toBe(ckpt);
    expect(await resolveModelPath("someone/sd15-tiny", opts)).toBe(snapshot);
    expect(await resolveModelPath("sub/tiny", opts)).toBe(ckpt);
    expect(await resolveModelPath("SUB/TINY", opts)).toBe(ckpt);
    const short = createHash("sha256").update(readFileSync(ckpt)).digest("hex").slice(0, 10);
    expect(await resolveModelPath(`sub/tiny [${short}]`, opts)).toBe(ckpt);
    expect(await resolveModelPath(short, opts)).toBe(ckpt);
  });

  it("says what to do with a name it cannot find: a catalogue name not pulled, a missing path, an unknown name", async () => {
    const { opts } = setUp();
    await expect(resolveModelPath("sdxl", opts)).rejects.toThrow(
      /"sdxl" \(stabilityai\/stable-diffusion-xl-base-1\.0\) has not been downloaded: run `diffuse pull sdxl`/,
    );
    await expect(resolveModelPath("/no/such/model.safetensors", opts)).rejects.toThrow(
      /model not found: \/no\/such\/model\.safetensors/,
    );
    await expect(resolveModelPath("nothing-like-it", opts)).rejects.toThrow(InputError);
    await expect(resolveModelPath("nothing-like-it", opts)).rejects.toThrow(
      /no model "nothing-like-it".*diffuse pull --list.*diffuse models/,
    );
  });

  it("a config.json that is not valid JSON, or whose modelsDirs is not a list of folders, is an error naming the file", async () => {
    const { opts, home } = setUp();
    writeFileSync(join(home, "config.json"), "{ modelsDirs: [");
    await expect(resolveModelPath("sub/tiny", opts)).rejects.toThrow(/config\.json is not valid JSON/);
    writeFileSync(join(home, "config.json"), JSON.stringify({ modelsDirs: "/one/folder" }));
    await expect(resolveModelPath("sub/tiny", opts)).rejects.toThrow(/"modelsDirs" must be a list of folder paths/);
  });
});
