import { renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { InputError } from "../errors.js";
import { defaultModelPath, isDefaultModel } from "../default-model.js";
import { GenerationAborted, loadPipeline } from "../pipeline/stable-diffusion.js";
import type { GenerateParams } from "../pipeline/params.js";
import { parseSeed, seedToJson } from "../random/seed.js";
import { signerConfigFromEnv } from "../responsible/provenance/index.js";
import { safetyPolicyOption } from "./safety-options.js";

interface GenerateOptions {
  model?: string;
  config?: string;
  tokenizer?: string;
  negative?: string;
  steps?: string;
  cfg?: string;
  seed?: string;
  sampler?: string;
  width?: string;
  height?: string;
  init?: string;
  strength?: string;
  mask?: string;
  batchSize?: string;
  batchCount?: string;
  clipSkip?: string;
  threads?: string;
  out: string;
  json?: boolean;
  progress: boolean;
  watermark: boolean;
  safetyCheck: boolean;
  safetyChecker?: string;
  safetyPolicy?: string;
  provenance: boolean;
  c2paKey?: string;
  c2paCert?: string;
  policy?: string;
}

/** Parses a numeric option strictly: "20" is 20, "20x" or "" is an error naming the flag. */
function num(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InputError(`${flag} ${JSON.stringify(value)} is not a number`);
  return n;
}

/** Output file names: `{seed}` and `{n}` are replaced; several images without a placeholder get "-n" suffixes. */
export function outputPaths(pattern: string, seeds: readonly bigint[]): string[] {
  const placeholder = /\{seed\}|\{n\}/.test(pattern);
  return seeds.map((seed, n) => {
    if (placeholder) return pattern.replaceAll("{seed}", String(seed)).replaceAll("{n}", String(n));
    if (seeds.length === 1) return pattern;
    const ext = extname(pattern);
    return `${pattern.slice(0, pattern.length - ext.length)}-${n}${ext}`;
  });
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("turn a prompt (and optionally a sketch or photo, and a mask) into images")
    .argument("<prompt>", "what to draw; (word:1.2) weights and BREAK as in AUTOMATIC1111")
    .option("-m, --model <path>", "a .safetensors checkpoint or a diffusers folder (default: the embedded tiny model)")
    .option("--config <dir>", "diffusers folder with config.json files for a single-file checkpoint of non-standard size")
    .option("--tokenizer <path>", "tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz")
    .option("-n, --negative <text>", "negative prompt")
    .option("--steps <n>", "denoising steps", "20")
    .option("--cfg <x>", "classifier-free guidance scale (1 disables guidance; default: the model's generation_config.json, else 7)")
    .option("--seed <s>", "seed from 0 to 18446744073709551615, as PyTorch takes it (-1 or absent: random; always printed)")
    .option("--sampler <name>", "sampler: euler-a, dpm++2m-karras, ... or A1111 names like \"Euler a\"")
    .option("-W, --width <w>", "width in pixels, a multiple of 8 (default: the model's size)")
    .option("-H, --height <h>", "height in pixels, a multiple of 8 (default: the model's size)")
    .option("--init <image>", "init image (sketch or photo) for image-to-image")
    .option("--strength <f>", "image-to-image denoising strength in (0, 1]", "0.75")
    .option("--mask <image>", "inpainting mask, white = repaint (same size as --init)")
    .option("--batch-size <n>", "images per batch", "1")
    .option("--batch-count <n>", "number of batches", "1")
    .option("--clip-skip <n>", "use the text encoder's n-th layer from the end", "1")
    .option("--threads <n>", "CPU threads (default: all cores)")
    .option("-o, --out <file>", "output PNG; {seed} and {n} are replaced", "out.png")
    .option("--json", "print a JSON result on stdout")
    .option("--no-progress", "no progress bar")
    .option("--safety-checker <path>", "a safety_checker folder (default: the model folder's own, if any)")
    .option("--safety-policy <policy>", "what to do with a flagged image: block (black), blur or flag", "block")
    .option("--no-safety-check", "do not run the safety checker (recorded in the image's metadata)")
    .option("--no-watermark", "do not embed the invisible watermarks (recorded in the image's metadata)")
    .option("--no-provenance", "do not attach C2PA content credentials (recorded in the image's metadata)")
    .option("--c2pa-key <pem>", "private key to sign content credentials with (default: a local self-signed key); also DIFFUSE_C2PA_KEY")
    .option("--c2pa-cert <pem>", "certificate chain for --c2pa-key; also DIFFUSE_C2PA_CERT")
    .option("--policy <rules.json>", "prompt policy rules: matching prompts are refused before any compute; also DIFFUSE_PROMPT_POLICY")
    .action(async (prompt: string, o: GenerateOptions) => {
      await generateCommand(prompt, o);
    });
}

async function generateCommand(prompt: string, o: GenerateOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const model = o.model ?? defaultModelPath();
  if (isDefaultModel(model)) {
    log("using the embedded tiny shapes model (a demo that draws coloured shapes); pass --model path/to/sd-v1-5.safetensors for real Stable Diffusion");
  }
  const params: GenerateParams = {
    prompt,
    negative_prompt: o.negative,
    steps: num("--steps", o.steps),
    cfg_scale: num("--cfg", o.cfg),
    seed: o.seed === undefined ? undefined : parseSeed(o.seed, "--seed"),
    sampler_name: o.sampler,
    width: num("--width", o.width),
    height: num("--height", o.height),
    batch_size: num("--batch-size", o.batchSize),
    n_iter: num("--batch-count", o.batchCount),
    denoising_strength: o.init === undefined ? undefined : num("--strength", o.strength),
    init_images: o.init === undefined ? undefined : [o.init],
    mask: o.mask,
    clip_skip: num("--clip-skip", o.clipSkip),
  };
  if (o.mask !== undefined && o.init === undefined) throw new InputError("--mask needs --init: the image to inpaint");

  const abort = new AbortController();
  const onSigint = () => {
    log("\ninterrupted: stopping after the current step, writing nothing");
    abort.abort();
  };
  process.once("SIGINT", onSigint);
  const threads = num("--threads", o.threads);
  const signer = { ...signerConfigFromEnv(), ...(o.c2paKey ? { keyPath: o.c2paKey } : {}), ...(o.c2paCert ? { certPath: o.c2paCert } : {}) };
  const pipe = await loadPipeline(model, {
    config: o.config,
    tokenizer: o.tokenizer,
    threads,
    onStatus: log,
    safetyChecker: o.safetyCheck ? o.safetyChecker : false,
    safetyPolicy: safetyPolicyOption(o.safetyPolicy),
    watermark: o.watermark,
    provenance: o.provenance ? signer : false,
    promptPolicy: o.policy ?? (process.env.DIFFUSE_PROMPT_POLICY || undefined),
  });
  const showBar = o.progress && !o.json && process.stderr.isTTY;
  const bar = showBar
    ? new cliProgress.SingleBar({ format: "{bar} {value}/{total} steps | {speed} s/it | ETA {eta}s", stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  let lastStepAt = performance.now();
  try {
    const result = await pipe.generate({
      ...params,
      signal: abort.signal,
      onStep: (e) => {
        const now = performance.now();
        const speed = ((now - lastStepAt) / 1000).toFixed(2);
        lastStepAt = now;
        if (!bar) return;
        if (e.step === 1) bar.start(e.steps, 0, { speed });
        bar.update(e.step, { speed });
        if (e.step === e.steps) bar.stop();
      },
    });
    const paths = outputPaths(o.out, result.images.map((i) => i.seed));
    // Every image is encoded first, then written to a temporary name and renamed, so an interruption or a
    // failure never leaves a half-written PNG under the requested name.
    const pngs = await Promise.all(result.images.map((i) => i.png()));
    const written: string[] = [];
    try {
      pngs.forEach((png, i) => {
        const target = resolve(paths[i]!);
        const tmp = `${target}.${process.pid}.partial`;
        try {
          writeFileSync(tmp, png);
          renameSync(tmp, target);
        } catch (e) {
          rmSync(tmp, { force: true });
          throw new InputError(`cannot write ${target} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check that ${dirname(target)} exists and is writable`);
        }
        written.push(target);
      });
    } catch (e) {
      for (const f of written) rmSync(f, { force: true });
      throw e;
    }
    const seeds = result.images.map((i) => i.seed);
    if (o.json) {
      // Seeds past 2^53 - 1 are written as strings: a number would lose digits in every JSON reader of JavaScript.
      const parameters = { ...result.parameters, seed: seedToJson(result.parameters.seed) };
      process.stdout.write(JSON.stringify({ images: written, seeds: seeds.map(seedToJson), parameters, info: result.info }) + "\n");
    } else {
      log(`seed ${seeds.join(", ")}`);
      for (const f of written) process.stdout.write(`${f}\n`);
    }
  } catch (e) {
    bar?.stop();
    if (e instanceof GenerationAborted) {
      process.exitCode = 130;
      return;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    await pipe.close();
  }
}
