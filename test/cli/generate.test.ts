import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { getPngText } from "../../src/image/png-text.js";
import { runCli } from "../helpers/cli.js";
import { golden, HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { writeScaledVaes } from "../helpers/scaled-vae.js";

const cacheDir = mkdtempSync(join(tmpdir(), "diffuse-cli-cache-"));
const env = { DIFFUSE_CACHE: cacheDir };

describe.skipIf(!HAVE_REFERENCE)("diffuse generate", () => {
  const model = ref("models/sd15-tiny");
  const prompt = "a photo of an astronaut riding a horse on mars";

  const txt2img = [
    { fixture: "txt2img", sampler: "PLMS", steps: 4, seed: 31 },
    { fixture: "txt2img_dpmpp2m_karras", sampler: "DPM++ 2M Karras", steps: 6, seed: 31 },
    { fixture: "txt2img_euler_a_seed42", sampler: "Euler a", steps: 5, seed: 42 },
  ];
  for (const c of txt2img) {
    it(`reproduces the reference ${c.fixture} image (${c.sampler}, ${c.steps} steps, seed ${c.seed}); diffuse info reads its parameters back`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-"));
      const out = join(dir, "astronaut-{seed}.png");
      const r = await runCli(
        [
          "generate",
          prompt,
          "--model",
          model,
          "--sampler",
          c.sampler,
          "--steps",
          String(c.steps),
          "--cfg",
          "7.5",
          "--seed",
          String(c.seed),
          "-o",
          out,
          "--json",
        ],
        { env },
      );
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      const result = JSON.parse(r.stdout);
      expect(result.images).toEqual([join(dir, `astronaut-${c.seed}.png`)]);
      const png = await sharp(result.images[0]).raw().toBuffer();
      const want = golden(`goldens/sd15-tiny/${c.fixture}.safetensors`).get("image_uint8");
      let max = 0;
      for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(png[i]! - want[i]!));
      expect(max).toBeLessThanOrEqual(1);
      const info = await runCli(["info", result.images[0], "--json"]);
      expect(info.code).toBe(0);
      const parsed = JSON.parse(info.stdout).parameters;
      expect(parsed).toMatchObject({
        prompt,
        steps: c.steps,
        sampler: c.sampler,
        cfgScale: 7.5,
        seed: c.seed,
        width: 64,
        height: 64,
      });
      expect(parsed.modelHash).toMatch(/^[0-9a-f]{10}$/);
    });
  }

  it("reproduces the reference img2img image (PLMS, strength 0.6, 10 steps, seed 7) from an init PNG", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-"));
    const init = join(dir, "init.png");
    const inputs = golden("goldens/sd15-tiny/img2img_inputs.safetensors");
    await sharp(Uint8Array.from(inputs.get("image_uint8_hwc")), { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toFile(init);
    const out = join(dir, "out.png");
    const r = await runCli(
      [
        "generate",
        prompt,
        "--model",
        model,
        "--sampler",
        "pndm",
        "--steps",
        "10",
        "--cfg",
        "7.5",
        "--seed",
        "7",
        "--init",
        init,
        "--strength",
        "0.6",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.code).toBe(0);
    const png = await sharp(out).raw().toBuffer();
    const want = golden("goldens/sd15-tiny/img2img.safetensors").get("image_uint8");
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(png[i]! - want[i]!));
    expect(max).toBeLessThanOrEqual(1);
  });

  it("takes --seed 18446744073709551615 (2^64-1) exactly: file name, --json (a string: a number would round it) and the infotext", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-"));
    const r = await runCli(
      [
        "generate",
        prompt,
        "--model",
        model,
        "--steps",
        "2",
        "--seed",
        "18446744073709551615",
        "-o",
        join(dir, "x-{seed}.png"),
        "--json",
      ],
      { env },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    const file = join(dir, "x-18446744073709551615.png");
    expect(result.images).toEqual([file]);
    expect(result.seeds).toEqual(["18446744073709551615"]);
    expect(result.parameters.seed).toBe("18446744073709551615");
    expect(result.info).toMatch(/, Seed: 18446744073709551615, /);
    const [text, info] = await Promise.all([runCli(["info", file]), runCli(["info", file, "--json"])]);
    expect(text.stdout).toMatch(/, Seed: 18446744073709551615, /);
    expect(JSON.parse(info.stdout).parameters.seed).toBe("18446744073709551615");
  });

  it("draws a random seed below 2^32-2 for --seed -1, as A1111 does, and prints it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-"));
    const r = await runCli(
      ["generate", prompt, "--model", model, "--steps", "1", "--seed", "-1", "-o", join(dir, "r.png")],
      { env },
    );
    expect(r.code).toBe(0);
    const printed = /^seed (\d+)$/m.exec(r.stderr);
    expect(printed).not.toBeNull();
    expect(Number(printed![1])).toBeLessThan(4294967294);
  });

  const dir = mkdtempSync(join(tmpdir(), "diffuse-cli-bad-"));
  const textFile = join(dir, "not-an-image.png");
  writeFileSync(textFile, "hello");
  const bad: [string, string[], RegExp][] = [
    ["an unreadable init image", ["--init", textFile], /not-an-image\.png/],
    ["width 500", ["--width", "500"], /width 500.*multiple of 8/],
    ["strength 1.5", ["--init", textFile, "--strength", "1.5"], /denoising strength 1\.5/],
    ["steps 0", ["--steps", "0"], /steps 0/],
    ["an unknown sampler", ["--sampler", "warp-drive"], /unknown sampler "warp-drive".*euler-a.*dpm\+\+2m-karras/],
    ["a missing model", ["--model", join(dir, "nope.safetensors")], /model not found.*nope\.safetensors/],
    [
      "seed 2^64",
      ["--seed", "18446744073709551616"],
      /--seed 18446744073709551616 is out of range: use an integer from 0 to 18446744073709551615, or -1/,
    ],
    [
      "a batch past the last seed",
      ["--seed", "18446744073709551615", "--batch-size", "2"],
      /seed 18446744073709551615 with 2 images needs seeds up to 18446744073709551616.*use a seed up to 18446744073709551614/,
    ],
  ];
  // Refused before any model is loaded, each in its own process: side by side they use both cores, where one at a
  // time each spends most of its second loading modules on one.
  for (const [what, args, message] of bad) {
    it.concurrent(`exits 2 with one line and writes no file for ${what}`, async () => {
      const out = join(dir, `${what.replace(/\W+/g, "-")}.png`);
      // A later --model overrides the first (the missing-model case).
      const r = await runCli(["generate", "a cat", "--model", model, "-o", out, ...args], { env });
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(existsSync(out)).toBe(false);
    });
  }

  it("inpaints with a mask of another size, only the masked region, and writes the mask options", async () => {
    // A 96x64 init; a 48x32 mask, black in a square (stretched: 16x16 at (40, 24)), inverted to repaint it.
    const init = join(dir, "init-wide.png");
    const mask = join(dir, "mask-half.png");
    const px = Buffer.alloc(96 * 64 * 3);
    for (let i = 0; i < 96 * 64; i++) px.set([(i * 7) % 256, (i * 3) % 256, 90], i * 3);
    await sharp(px, { raw: { width: 96, height: 64, channels: 3 } })
      .png()
      .toFile(init);
    const m = Buffer.alloc(48 * 32, 255);
    for (let y = 12; y < 20; y++) for (let x = 20; x < 28; x++) m[y * 48 + x] = 0;
    await sharp(m, { raw: { width: 48, height: 32, channels: 1 } })
      .png()
      .toFile(mask);
    const out = join(dir, "inpaint.png");
    const r = await runCli(
      [
        "generate",
        "a cat",
        "--model",
        model,
        "--init",
        init,
        "--mask",
        mask,
        "--invert-mask",
        "--mask-blur",
        "1",
        "--inpaint-fill",
        "latent nothing",
        "--inpaint-full-res",
        "4",
        "-W",
        "32",
        "-H",
        "32",
        "--steps",
        "3",
        "--no-safety-check",
        "--no-watermark",
        "--no-provenance",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const png = readFileSync(out);
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([96, 64]);
    // Past the reach of the blur (3 mask pixels) and of the stretch's filter (3 more), every pixel is the init image's.
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 96; x++)
        if (x < 26 || x >= 70 || y < 10 || y >= 54)
          expect(Array.from(data.subarray((y * 96 + x) * 3, (y * 96 + x) * 3 + 3)), `${x},${y}`).toEqual(
            Array.from(px.subarray((y * 96 + x) * 3, (y * 96 + x) * 3 + 3)),
          );
    const infotext = getPngText(png, "parameters")!;
    expect(infotext).toMatch(/Size: 32x32/);
    expect(infotext).toMatch(
      /Mask blur: 1, Mask mode: Inpaint not masked, Masked content: latent nothing, Inpaint area: Only masked, Masked area padding: 4/,
    );
  });

  it("decodes with the VAE --vae names and writes it in the infotext", async () => {
    const vae = writeScaledVaes(mkdtempSync(join(tmpdir(), "diffuse-cli-vae-")), 0.5).original;
    const out = join(dir, "vae.png");
    const r = await runCli(
      [
        "generate",
        "a cat",
        "--model",
        model,
        "--vae",
        vae,
        "--steps",
        "2",
        "--no-watermark",
        "--no-provenance",
        "-o",
        out,
      ],
      { env },
    );
    expect(r.code).toBe(0);
    expect(getPngText(readFileSync(out), "parameters")).toMatch(
      /VAE hash: [0-9a-f]{10}, VAE: vae-ft-scaled\.safetensors/,
    );
  });

  it("exits 2 for a mask option without --mask, naming both", async () => {
    const r = await runCli(["generate", "a cat", "--model", model, "--mask-blur", "4", "-o", join(dir, "x.png")], {
      env,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--mask-blur needs --mask/);
  });

  it("leaves no output file, partial or whole, when interrupted with SIGINT", async () => {
    const out = join(dir, "interrupted.png");
    // The preview file (in a folder of its own) appears after the first step: the run is then under way.
    const preview = join(mkdtempSync(join(tmpdir(), "diffuse-cli-preview-")), "preview.png");
    let sent = false;
    const r = await runCli(
      [
        "generate",
        "a cat",
        "--model",
        model,
        "--steps",
        "1000",
        "-W",
        "256",
        "-H",
        "256",
        "-o",
        out,
        "--preview",
        preview,
      ],
      {
        env,
        onSpawn: (child) => {
          // Interrupt once the run is under way: at its first step's preview, not after a fixed wait.
          const timer = setInterval(() => {
            if (!existsSync(preview)) return;
            clearInterval(timer);
            sent = true;
            child.kill("SIGINT");
          }, 20);
          child.on("close", () => clearInterval(timer));
        },
      },
    );
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(readdirSync(dir).filter((f) => f.startsWith("interrupted"))).toEqual([]);
  });
});
