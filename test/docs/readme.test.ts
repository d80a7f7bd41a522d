/**
 * Every code block of README.md runs here as written, in the README's order, in one fresh folder, as a user working
 * through it would. The shell blocks' commands go through the CLI; the TypeScript block runs with tsx (importing
 * "diffuse" from the sources); the test command is compared with what CI runs (.ci/run), since it is this suite.
 *
 * Where the README names a user's own model, picture or download, a stand-in of the reference fixtures lies under the
 * README's name (test/helpers/readme-stand-ins.ts), `pull` downloads from a local fake Hub (HF_ENDPOINT), and a
 * command that asks something at a terminal (a licence) runs at a pseudo-terminal where the answer is typed. One
 * stand-in cannot be exact: the tiny models are of non-standard sizes, which a single file cannot describe (a real
 * checkpoint of standard size needs nothing more). A command that names such a single file runs as written first and
 * must stop only at that, having parsed its options and identified the file; it then runs again with the stand-in's
 * config folder added (--config, --refiner-config, --control-config), and its output is checked.
 *
 * Each command's output is checked for what the README says it does: every command must have a check below.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readImageParameters } from "../../src/image/image-parameters.js";
import { type CliResult, runCli, runCliAtTerminal } from "../helpers/cli.js";
import { FakeHub } from "../helpers/fake-hub.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { freshStore, storeEnv } from "../helpers/hub-fixtures.js";
import {
  type ReadmeStandIns,
  readmeHubRepos,
  STAND_IN_STEPS,
  writeReadmeStandIns,
} from "../helpers/readme-stand-ins.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** tsx's loader by its path: the example's folder has no node_modules to find it by name. */
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const CI_RUN = readFileSync(join(ROOT, ".ci/run"), "utf8");

interface Block {
  lang: string;
  code: string;
}

function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
}

/** Shell words of one command line: double and single quotes, backslash-newline continuations, # comments, &&. */
function commands(code: string): string[][] {
  const out: string[][] = [];
  for (const line of code.replace(/\\\n\s*/g, " ").split("\n")) {
    let words: string[] = [];
    let word: string | null = null;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === '"' || c === "'") {
        const end = line.indexOf(c, i + 1);
        word = (word ?? "") + line.slice(i + 1, end);
        i = end;
      } else if (c === " " || c === "\t") {
        if (word !== null) words.push(word);
        word = null;
      } else if (c === "#" && word === null) break;
      else if (c === "&" && line[i + 1] === "&" && word === null) {
        out.push(words);
        words = [];
        i++;
      } else word = (word ?? "") + c;
    }
    if (word !== null) words.push(word);
    if (words.length > 0) out.push(words);
  }
  return out;
}

/** diffuse's arguments in a command line (`node bin/diffuse.js ...` or `diffuse ...`), null for another program. */
function diffuseArgs(words: readonly string[]): string[] | null {
  if (words[0] === "node" && words[1] === "bin/diffuse.js") return words.slice(2);
  return words[0] === "diffuse" ? words.slice(1) : null;
}

/** A command's leading VAR=value words (the environment it sets) apart from the program and its arguments. */
function splitEnv(words: readonly string[]): { env: string[]; argv: string[] } {
  const at = words.findIndex((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w));
  return { env: words.slice(0, at), argv: words.slice(at) };
}

const all = blocks(README);
const cliBlocks = all.filter((b) => b.lang === "sh" && commands(b.code).some((c) => diffuseArgs(c)));
const libraryBlocks = all.filter((b) => b.lang === "ts");
/** The test command: npm alone (after its environment). */
const testBlocks = all.filter((b) => b.lang === "sh" && commands(b.code).every((c) => splitEnv(c).argv[0] === "npm"));

/** What one command did, for its check. */
interface Run {
  readonly r: CliResult;
  readonly cwd: string;
  /** The images it reports writing (absolute paths), in order. */
  readonly images: string[];
}

interface Check {
  /** The command as written in the README, after `diffuse` (words joined by spaces). */
  readonly command: RegExp;
  /** It asks this question at a terminal (where the test types "y", as a user accepting would). */
  readonly asks?: RegExp;
  readonly check: (run: Run) => Promise<void> | void;
}

/** Today's date as the output folder names it (local time, as A1111's folders are). */
const today = () => {
  const d = new Date();
  return [d.getFullYear(), d.getMonth() + 1, d.getDate()].map((n) => String(n).padStart(2, "0")).join("-");
};

/** The infotext stored in an image (PNG text chunk or EXIF UserComment), read in this process. */
async function parameters(path: string): Promise<string> {
  const p = (await readImageParameters(readFileSync(path), path)).parameters;
  expect(p, `${path} has no parameters`).toBeDefined();
  return p!;
}

/** The one image a command reports, written where A1111 would put it without -o: outputs/<kind>/<date>/NNNNN-SEED.png. */
async function expectNumberedOutput(run: Run, kind: "txt2img" | "img2img"): Promise<string> {
  expect(run.images).toHaveLength(1);
  const rel = relative(run.cwd, run.images[0]!);
  const m = new RegExp(`^outputs/${kind}/${today()}/\\d{5}-(\\d+)\\.png$`).exec(rel);
  expect(m, rel).not.toBeNull();
  expect(await parameters(run.images[0]!)).toContain(`Seed: ${m![1]}`);
  return run.images[0]!;
}

/** The image the command wrote to exactly `name` (in the folder it ran in), with its infotext. */
async function expectWritten(run: Run, name: string, magic: readonly number[]): Promise<string> {
  const path = join(run.cwd, name);
  expect(run.images.map((p) => realpathSync(p))).toEqual([realpathSync(path)]);
  expect([...readFileSync(path).subarray(0, magic.length)]).toEqual(magic);
  return parameters(path);
}
const PNG = [0x89, 0x50, 0x4e, 0x47];
const JPEG = [0xff, 0xd8, 0xff];

async function rgb(path: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

const CHECKS: readonly Check[] = [
  {
    command: /^generate "a red circle on a blue background"$/,
    check: async (run) => {
      const params = await parameters(await expectNumberedOutput(run, "txt2img"));
      expect(params).toMatch(/^a red circle on a blue background\n.*Model: tiny-shapes/);
      // The model's own recommendation (its generation_config.json asks for cfg 3).
      expect(params).toContain("CFG scale: 3,");
    },
  },
  {
    command: /^generate "a red square, blue background" --init examples\/sketch.png --strength 0.6 -o square.png$/,
    check: async (run) => {
      expect(await expectWritten(run, "square.png", PNG)).toMatch(
        /^a red square, blue background\n.*Denoising strength: 0.6,/,
      );
    },
  },
  {
    command: /^pull sd-1.5$/,
    asks: /CreativeML Open RAIL-M licence.*\n[\s\S]*Accept the CreativeML Open RAIL-M licence\? \[y\/N\]/,
    check: (run) => {
      const snapshot = run.r.stdout.trim().split("\n").at(-1)!;
      expect(snapshot).toMatch(/models--stable-diffusion-v1-5--stable-diffusion-v1-5\/snapshots\/[0-9a-f]{40}$/);
      expect(run.r.stdout).toMatch(/sd-1.5: \d+ file\(s\), .* downloaded; licence: CreativeML Open RAIL-M/);
      // fp16 safetensors only: the UNet's fp16 variant, and no pickle, Flax or ONNX copy.
      const unet = readdirSync(join(snapshot, "unet"));
      expect(unet).toContain("diffusion_pytorch_model.fp16.safetensors");
      expect(unet.filter((f) => !f.endsWith(".json"))).toEqual(["diffusion_pytorch_model.fp16.safetensors"]);
      expect(existsSync(join(snapshot, "onnx"))).toBe(false);
      expect(readdirSync(join(snapshot, "text_encoder"))).not.toContain("flax_model.msgpack");
    },
  },
  {
    command:
      /^generate "a lighthouse at dusk, oil painting" --model sd-1.5 --steps 25 --sampler "DPM\+\+ 2M Karras" --seed 42 -o lighthouse.png$/,
    check: async (run) => {
      expect(await expectWritten(run, "lighthouse.png", PNG)).toMatch(
        /^a lighthouse at dusk, oil painting\nSteps: 25, Sampler: DPM\+\+ 2M Karras, .*Seed: 42, .*Model: stable-diffusion-v1-5\/stable-diffusion-v1-5,/,
      );
    },
  },
  {
    command: /^generate "a lighthouse" --model sd-1.5 --sampler Euler --schedule "SGM Uniform"$/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "txt2img"))).toMatch(
        new RegExp(`^a lighthouse\\nSteps: ${STAND_IN_STEPS}, Sampler: Euler, Schedule type: SGM Uniform,`),
      );
    },
  },
  {
    command: /^generate "a lighthouse" --model v1-5-pruned-emaonly.safetensors$/,
    // The single file's tokenizer comes from the store, under its own licence, asked once.
    asks: /fetching the clip-l-tokenizer tokenizer[\s\S]*Accept the MIT licence\? \[y\/N\]/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "txt2img"))).toMatch(
        /Model hash: [0-9a-f]{10}, Model: v1-5-pruned-emaonly,/,
      );
    },
  },
  {
    command: /^generate "oil painting of a harbour" --model sd15\/ --init sketch.png --strength 0.7$/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "img2img"))).toMatch(
        /^oil painting of a harbour\n.*Model: sd15, Denoising strength: 0.7,/,
      );
    },
  },
  {
    command: /^generate "a cat" --model sd15\/ --init photo.png --mask mask.png$/,
    check: async (run) => {
      const out = await expectNumberedOutput(run, "img2img");
      // Inpainting repaints what the mask paints white (its centre) and keeps the rest of the photo.
      const [a, b, mask] = await Promise.all([
        rgb(out),
        rgb(join(run.cwd, "photo.png")),
        rgb(join(run.cwd, "mask.png")),
      ]);
      let kept = 0,
        repainted = 0;
      for (let i = 0; i < a.data.length; i++) {
        const d = Math.abs(a.data[i]! - b.data[i]!);
        if (mask.data[i] === 0) kept = Math.max(kept, d);
        else repainted = Math.max(repainted, d);
      }
      expect(kept).toBe(0);
      expect(repainted).toBeGreaterThan(20);
    },
  },
  {
    command:
      /^generate "a cat" --model sd15\/ --init photo.png --mask mask.png --mask-blur 4 --inpaint-fill fill --inpaint-full-res 32$/,
    check: async (run) => {
      const out = await expectNumberedOutput(run, "img2img");
      expect(await parameters(out)).toMatch(
        /Size: \d+x\d+, .*Mask blur: 4, Masked content: fill, Inpaint area: Only masked, Masked area padding: 32,/,
      );
      // "Only masked" repaints the masked area at the model's size and pastes it back into the photo, at its size.
      expect(await sharp(out).metadata()).toMatchObject({ width: 64, height: 64 });
    },
  },
  {
    command: /^generate "a cat" --model sd15\/ --vae vae-ft-mse-840000-ema-pruned.safetensors$/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "txt2img"))).toMatch(
        /VAE hash: [0-9a-f]{10}, VAE: vae-ft-mse-840000-ema-pruned.safetensors,/,
      );
    },
  },
  {
    command: /^inspect v1-5-pruned-emaonly.safetensors$/,
    check: (run) => {
      const sha256 = createHash("sha256")
        .update(readFileSync(join(run.cwd, "v1-5-pruned-emaonly.safetensors")))
        .digest("hex");
      expect(run.r.stdout).toMatch(/family +sd1\b/);
      expect(run.r.stdout).toMatch(/unet +[\d,]+ parameters/);
      expect(run.r.stdout).toMatch(/text encoder +[\d,]+ parameters/);
      expect(run.r.stdout).toContain(`hash           ${sha256.slice(0, 10)}  (sha256 ${sha256})`);
    },
  },
  {
    command: /^generate "a lighthouse" --model sd15\/ -o lighthouse-\{seed\}.jpg$/,
    check: async (run) => {
      expect(run.images).toHaveLength(1);
      const name = relative(run.cwd, run.images[0]!);
      const seed = /^lighthouse-(\d+)\.jpg$/.exec(name)?.[1];
      expect(seed, name).toBeDefined();
      expect(await expectWritten(run, name, JPEG)).toMatch(new RegExp(`^a lighthouse\\n.*Seed: ${seed},`));
    },
  },
  {
    command: /^info lighthouse.png$/,
    check: (run) => {
      expect(run.r.stdout).toMatch(
        /^a lighthouse at dusk, oil painting\nSteps: 25, Sampler: DPM\+\+ 2M Karras, .*Seed: 42,/,
      );
    },
  },
  {
    command:
      /^generate "a fox in the snow" --model sd_xl_base_1.0.safetensors --config sdxl-base\/ --prompt-2 watercolour --refiner sd_xl_refiner_1.0.safetensors --refiner-switch-at 0.8$/,
    check: async (run) => {
      const out = await expectNumberedOutput(run, "txt2img");
      const text = await parameters(out);
      expect(text).toMatch(
        /Size: \d+x\d+, .*Model: sd_xl_base_1.0, .*Refiner: sd_xl_refiner_1.0 \[[0-9a-f]{10}\], Refiner switch at: 0.8,/,
      );
      // The model's own size (1024 px for SDXL; the stand-in's is smaller), which the image has.
      const [width, height] = /Size: (\d+)x(\d+),/.exec(text)!.slice(1).map(Number);
      expect(await sharp(out).metadata()).toMatchObject({ width, height });
    },
  },
  {
    command:
      /^generate "a castle on a hill" --model sd15\/ --control sketch.png --control-type scribble --control-model control_v11p_sd15_scribble.safetensors --control-scale 0.8 --control-end 0.8$/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "txt2img"))).toMatch(
        /ControlNet 0: "Module: scribble, Model: control_v11p_sd15_scribble \[[0-9a-f]{8}\], Weight: 0.8, .*Guidance End: 0.8,/,
      );
    },
  },
  {
    command:
      /^generate "a red star, blue background" --control examples\/scribble.png --control-type scribble --control-model tiny-shapes-scribble$/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "txt2img"))).toMatch(
        /ControlNet 0: "Module: scribble, Model: tiny-shapes-scribble \[[0-9a-f]{8}\], Weight: 1/,
      );
    },
  },
  {
    command: /^generate "a fox, watercolor <lora:watercolor:0.8>" --model sd15\/ --lora-dir loras\/ -n EasyNegative$/,
    check: async (run) => {
      const params = await parameters(await expectNumberedOutput(run, "txt2img"));
      expect(params).toMatch(/^a fox, watercolor <lora:watercolor:0.8>\nNegative prompt: EasyNegative\n/);
      expect(params).toMatch(/Lora hashes: "watercolor: [0-9a-f]{12}", TI hashes: "EasyNegative: [0-9a-f]{12}"/);
    },
  },
  {
    command: /^generate "a castle" --model sd15\/ --lora lcm-lora-sdv1-5:1 --sampler LCM --steps 4 --cfg 1.5$/,
    check: async (run) => {
      expect(await parameters(await expectNumberedOutput(run, "txt2img"))).toMatch(
        /Steps: 4, Sampler: LCM, CFG scale: 1.5, .*Lora hashes: "lcm-lora-sdv1-5: [0-9a-f]{12}"/,
      );
    },
  },
];

function checkOf(args: readonly string[]): Check {
  const line = args.map((w) => (/[\s"]/.test(w) ? `"${w}"` : w)).join(" ");
  const found = CHECKS.filter((c) => c.command.test(line));
  if (found.length !== 1)
    throw new Error(`README command "diffuse ${line}" has ${found.length} checks in readme.test.ts (one wanted)`);
  return found[0]!;
}

/** A block needs the reference fixtures' stand-ins when it names a model of the user's or downloads one. */
const needsStandIns = (b: Block) =>
  commands(b.code).some((c) => {
    const args = diffuseArgs(c);
    return args !== null && (args.includes("--model") || args[0] === "pull" || args[0] === "inspect");
  });

describe("README.md's code blocks", () => {
  it("are the CLI's, the library's and the test command's, and every CLI command has a check", () => {
    expect(cliBlocks.length + libraryBlocks.length + testBlocks.length).toBe(all.length);
    expect(libraryBlocks).toHaveLength(1);
    expect(testBlocks).toHaveLength(1);
    for (const b of cliBlocks) {
      for (const c of commands(b.code)) {
        const args = diffuseArgs(c);
        // Besides diffuse: the install before the first run, and its environment.
        if (!args) expect(c[0] === "export" || (c[0] === "npm" && c[1] === "install"), c.join(" ")).toBe(true);
        else checkOf(args);
      }
    }
    expect(
      new Set(
        cliBlocks.flatMap((b) =>
          commands(b.code)
            .map(diffuseArgs)
            .filter(Boolean)
            .map((a) => checkOf(a!)),
        ),
      ).size,
    ).toBe(CHECKS.length);
  });

  it("the test command is what CI runs (.ci/run): the same environment, npm commands and system packages", () => {
    const readme = commands(testBlocks[0]!.code).map(splitEnv);
    const ci = commands(CI_RUN);
    // npm flags that only quiet its report (no audit summary, no funding notice) change nothing that runs.
    const quiet = new Set(["--no-audit", "--no-fund"]);
    const ciNpm = ci.filter((c) => c[0] === "npm").map((c) => c.filter((w) => !quiet.has(w)));
    expect(readme.map((c) => c.argv)).toEqual(ciNpm);
    const ciEnv = ci.filter((c) => c[0] === "export").flatMap((c) => c.slice(1));
    expect(readme.flatMap((c) => c.env)).toEqual(ciEnv);
    // What .ci/run installs from the system's packages, the README says the tests need.
    const packages = [...CI_RUN.matchAll(/missing\+=\(([\w-]+)\)/g)].map((m) => m[1]!);
    expect(packages.length).toBeGreaterThan(0);
    const testSection = README.slice(README.indexOf("## Test"), README.indexOf("\n## ", README.indexOf("## Test") + 1));
    for (const p of packages) expect(testSection).toContain(p);
  });

  describe("run as written, in order, in one fresh folder", () => {
    // Every folder the commands write to, removed when they are done: the compile cache alone holds about 33 MB.
    const folders: string[] = [];
    const folder = (prefix: string) => {
      folders.push(mkdtempSync(join(tmpdir(), prefix)));
      return folders.at(-1)!;
    };
    const cwd = folder("diffuse-readme-");
    let env: Record<string, string> = {
      // One compile cache for every command: each model's graphs are built once.
      DIFFUSE_CACHE: folder("diffuse-readme-cache-"),
      DIFFUSE_HOME: folder("diffuse-readme-home-"),
      // The local C2PA signing identity that generate makes on first use, here rather than in the user's ~/.config.
      XDG_CONFIG_HOME: folder("diffuse-readme-config-"),
    };
    let hub: FakeHub | undefined;
    let standIns: ReadmeStandIns | undefined;
    beforeAll(async () => {
      symlinkSync(join(ROOT, "examples"), join(cwd, "examples"), "dir");
      if (!HAVE_REFERENCE) return;
      hub = await FakeHub.start(readmeHubRepos());
      const store = freshStore(hub.url);
      folders.push(dirname(store.cacheDir));
      env = { ...env, ...storeEnv(store) };
      standIns = await writeReadmeStandIns(cwd, store.home);
    });
    afterAll(async () => {
      await hub?.close();
      for (const f of folders) rmSync(f, { recursive: true, force: true });
    });

    /** The config folder a stand-in needs where the command names a single file of non-standard size. */
    function standInConfig(args: readonly string[]): { file: string; flag: string; dir: string } | undefined {
      for (const [i, w] of args.entries()) {
        const config = standIns?.configs.get(w);
        if (config && args[i - 1] === config.use) return { file: w, flag: config.flag, dir: config.dir };
      }
      return undefined;
    }

    async function runCommand(args: string[]): Promise<void> {
      const check = checkOf(args);
      const config = standInConfig(args);
      const [asWritten, r] = await Promise.all([
        // As written, the stand-in stops at its sizes: every option was accepted and the file identified.
        config ? runCli(args, { env, cwd }) : undefined,
        check.asks
          ? runCliAtTerminal(config ? [...args, config.flag, config.dir] : args, "y", { env, cwd })
          : runCli(config ? [...args, config.flag, config.dir] : args, { env, cwd }),
      ]);
      if (asWritten) {
        expect(asWritten.code).toBe(2);
        expect(asWritten.stderr).toMatch(
          new RegExp(`^diffuse: ${config!.file.replaceAll(".", "\\.")}: .* (of|with) non-standard sizes`),
        );
        // ... and says how to pass the config folder there.
        expect(asWritten.stderr).toContain(`${config!.flag}:`);
      }
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code, r.stderr || r.stdout).toBe(0);
      if (check.asks) {
        expect("asked" in r && r.asked).toBe(true);
        expect(r.stdout).toMatch(check.asks);
      }
      const images = r.stdout
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => /\.(png|jpe?g|webp)$/.test(l))
        .map((l) => resolve(cwd, l));
      for (const f of images) expect(existsSync(f), f).toBe(true);
      await check.check({ r, cwd, images });
    }

    for (const [n, block] of all.entries()) {
      const title = block.code
        .split("\n")
        .find((l) => /loadPipeline/.test(l))
        ?.trim();
      if (testBlocks.includes(block)) continue; // the suite itself: compared with .ci/run above
      if (block.lang === "ts") {
        it(`block ${n + 1} (the library): ${title}`, async () => {
          const file = join(cwd, "example.mts"); // an ES module, as the example is (top-level await)
          writeFileSync(
            file,
            block.code.replaceAll('from "diffuse"', `from ${JSON.stringify(join(ROOT, "src/index.ts"))}`),
          );
          const r = spawnSync(process.execPath, ["--import", TSX, file], {
            cwd,
            env: { ...process.env, ...env },
            encoding: "utf8",
          });
          expect(r.stderr).not.toMatch(/error/i);
          expect(r.status, r.stderr).toBe(0);
          const written = [...block.code.matchAll(/writeFile\("([^"]+)"/g)].map((m) => m[1]!);
          expect(written.length).toBeGreaterThan(0);
          for (const f of written) expect([...readFileSync(join(cwd, f)).subarray(0, 4)]).toEqual(PNG);
          // The camelCase parameters it passes are the ones the image records.
          expect(await parameters(join(cwd, "circle.png"))).toMatch(
            /^a red circle, blue background\nNegative prompt: green\nSteps: 20, .*CFG scale: 7, Seed: 42,/,
          );
        });
        continue;
      }
      // One test per command, in order (a later one may read what an earlier one wrote, as `info lighthouse.png`).
      for (const [m, words] of commands(block.code).entries()) {
        const args = diffuseArgs(words);
        if (!args) continue; // the install and its environment: this suite runs installed
        it.skipIf(needsStandIns(block) && !HAVE_REFERENCE)(
          `block ${n + 1}, command ${m + 1}: diffuse ${args.join(" ")}`,
          async () => runCommand(args),
        );
      }
    }
  });
});
