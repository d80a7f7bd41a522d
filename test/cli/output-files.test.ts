import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { InputError } from "../../src/errors.js";
import { stageFiles } from "../../src/cli/output-files.js";
import { runCli } from "../helpers/cli.js";

const env = {
  DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-out-cache-")),
  XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "diffuse-out-config-")),
};
const fresh = () => mkdtempSync(join(tmpdir(), "diffuse-out-"));
const generate = (out: string, ...args: string[]) =>
  runCli(["generate", "a red circle", "--seed", "9", "-o", out, ...args], { env });
const isRoot = process.getuid?.() === 0;
// The refusals next to each other run side by side (it.concurrent): each ends before any model is loaded, and one at
// a time each spends most of its second loading modules on one core of two.

/** Refused before any compute: the error is the only line (the model's banner comes after the checks). */
function expectRefusedUpFront(r: { code: number | null; stderr: string }, message: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(message);
}

describe("diffuse generate -o: file names", () => {
  it("writes a legal 250-character file name (the temporary name must fit too) and leaves no temporary file", async () => {
    const dir = fresh();
    const name = `${"n".repeat(246)}.png`;
    const r = await generate(join(dir, name));
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(readdirSync(dir)).toEqual([name]);
    expect((await sharp(join(dir, name)).metadata()).format).toBe("png");
  });

  it.concurrent("refuses a file name over 255 bytes before generating, naming the limit", async () => {
    const dir = fresh();
    expectRefusedUpFront(await generate(join(dir, `${"é".repeat(126)}.png`)), /256 bytes.*255/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it.concurrent("refuses a folder that does not exist before generating", async () => {
    const dir = fresh();
    expectRefusedUpFront(await generate(join(dir, "missing", "out.png")), /missing.*does not exist/);
  });
});

describe("diffuse generate -o: never replaces what is not a regular file", () => {
  it.concurrent("refuses a FIFO before generating, and it stays a FIFO", async () => {
    const dir = fresh();
    const fifo = join(dir, "pipe.png");
    execFileSync("mkfifo", [fifo]);
    expectRefusedUpFront(await generate(fifo), /pipe\.png.*not a regular file/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir)).toEqual(["pipe.png"]);
  });

  it.concurrent("refuses a directory before generating, and it stays a directory", async () => {
    const dir = fresh();
    mkdirSync(join(dir, "folder.png"));
    expectRefusedUpFront(await generate(join(dir, "folder.png")), /folder\.png.*directory/);
    expect(lstatSync(join(dir, "folder.png")).isDirectory()).toBe(true);
  });

  it.runIf(isRoot)("as root, refuses a character device (like /dev/full) and it stays one", async () => {
    const dir = fresh();
    const dev = join(dir, "full.png");
    execFileSync("mknod", [dev, "c", "1", "7"]);
    expectRefusedUpFront(await generate(dev), /full\.png.*not a regular file/);
    expect(lstatSync(dev).isCharacterDevice()).toBe(true);
  });

  it("follows a symbolic link to a regular file: the file gets the image and the link stays a link", async () => {
    const dir = fresh();
    mkdirSync(join(dir, "real"));
    writeFileSync(join(dir, "real", "target.png"), "old");
    symlinkSync(join("real", "target.png"), join(dir, "link.png"));
    const r = await generate(join(dir, "link.png"));
    expect(r.code).toBe(0);
    expect(lstatSync(join(dir, "link.png")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, "link.png"))).toBe(join("real", "target.png"));
    expect((await sharp(readFileSync(join(dir, "real", "target.png"))).metadata()).format).toBe("png");
    expect(readdirSync(join(dir, "real"))).toEqual(["target.png"]);
  });

  it("refuses a link to a directory, and a dangling link, before generating", async () => {
    const dir = fresh();
    mkdirSync(join(dir, "folder"));
    symlinkSync("folder", join(dir, "to-folder.png"));
    expectRefusedUpFront(await generate(join(dir, "to-folder.png")), /to-folder\.png.*directory/);
    symlinkSync("nowhere.png", join(dir, "dangling.png"));
    expectRefusedUpFront(
      await generate(join(dir, "dangling.png")),
      /dangling\.png.*link to .*nowhere\.png.*does not exist/,
    );
    expect(readdirSync(dir).sort()).toEqual(["dangling.png", "folder", "to-folder.png"]);
  });

  it("checks again when committing: a target replaced by a FIFO after the checks is refused and left alone", async () => {
    const dir = fresh();
    const target = join(dir, "late.png");
    const staged = stageFiles([{ path: target, bytes: Buffer.from("image bytes") }]);
    expect(readdirSync(dir)).toHaveLength(1);
    execFileSync("mkfifo", [target]);
    let error: unknown;
    try {
      staged.commit();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/late\.png.*not a regular file/);
    expect(lstatSync(target).isFIFO()).toBe(true);
    expect(readdirSync(dir)).toEqual(["late.png"]);
  });
});

describe("diffuse generate -o: the extension names the format", () => {
  it("out.jpg is a JPEG whose parameters diffuse info reads back and whose credentials diffuse verify validates", async () => {
    const dir = fresh();
    const out = join(dir, "out.jpg");
    const prompt = "ein roter Kreis über Wasser, 日本";
    const r = await runCli(["generate", prompt, "--seed", "9", "--steps", "6", "-o", out], { env });
    expect(r.code).toBe(0);
    expect((await sharp(out).metadata()).format).toBe("jpeg");
    // Two readers of the written file, side by side.
    const [info, verify] = await Promise.all([
      runCli(["info", out, "--json"], { env }),
      runCli(["verify", out], { env }),
    ]);
    expect(info.code).toBe(0);
    expect(JSON.parse(info.stdout).parameters).toMatchObject({ prompt, seed: 9, steps: 6, width: 64, height: 64 });
    expect(verify.stdout).toContain("trainedAlgorithmicMedia");
    expect(verify.code).toBe(0);
  });

  it("out.webp is refused before generating while provenance is on (C2PA here signs PNG and JPEG only), and says how", async () => {
    const dir = fresh();
    expectRefusedUpFront(await generate(join(dir, "out.webp")), /WebP.*--no-provenance/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("with --no-provenance, out.webp is a WebP whose parameters diffuse info reads; diffuse verify says it has no credentials", async () => {
    const dir = fresh();
    const out = join(dir, "out.webp");
    expect((await generate(out, "--no-provenance")).code).toBe(0);
    expect((await sharp(out).metadata()).format).toBe("webp");
    const [info, verify] = await Promise.all([runCli(["info", out], { env }), runCli(["verify", out], { env })]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^a red circle\n.*Seed: 9.*Provenance: off/s);
    expect(verify.code).toBe(2);
    expect(verify.stderr).toMatch(/out\.webp has no C2PA manifest/);
  });

  it("JPEG and WebP outputs keep the robust watermark: diffuse detect finds it after lossy compression", async () => {
    const dir = fresh();
    // One after the other: two first runs side by side would race to build the model cache (item 6's fault).
    for (const ext of ["jpg", "webp"]) {
      const out = join(dir, `marked.${ext}`);
      expect((await generate(out, "-W", "128", "-H", "128", "--no-provenance")).code).toBe(0);
      expect((await sharp(out).metadata()).format).toBe(ext === "jpg" ? "jpeg" : "webp");
      const detect = await runCli(["detect", out, "--json"], { env });
      expect(JSON.parse(detect.stdout)).toMatchObject({
        verdict: "robust",
        robust: { found: true, payload: { generator: 0x6466 } },
      });
    }
  });

  it("an unknown extension is refused before generating, naming the supported ones", async () => {
    const dir = fresh();
    for (const name of ["out.gif", "out"]) {
      expectRefusedUpFront(await generate(join(dir, name)), /\.png.*\.jpg.*\.jpeg.*\.webp/);
    }
    expect(existsSync(join(dir, "out"))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
