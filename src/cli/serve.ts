import type { Command } from "commander";
import { defaultModelPath, isDefaultModel } from "../default-model.js";
import { InputError } from "../errors.js";
import { signerConfigFromEnv } from "../responsible/provenance/index.js";
import { modelOption } from "./model-option.js";
import { safetyPolicyOption } from "./safety-options.js";
import { buildApp } from "../server/app.js";
import { DEFAULTS, resolveServerConfig } from "../server/config.js";

interface ServeOptions {
  host: string;
  port: string;
  model?: string;
  config?: string;
  tokenizer?: string;
  tokenizer2?: string;
  refiner?: string;
  refinerConfig?: string;
  data: string;
  token?: string;
  threads?: string;
  bodyLimit?: string;
  workBudget: string;
  log?: boolean;
  watermark: boolean;
  safetyCheck: boolean;
  safetyChecker?: string;
  safetyPolicy?: string;
  provenance: boolean;
  policy?: string;
  acceptLicense?: boolean;
  controlnetDir: string[];
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("web page with a sketch canvas, our HTTP API (/api/v1, /api/docs) and the AUTOMATIC1111 API (/sdapi/v1)")
    .option("--host <address>", "address to listen on; anything but loopback needs --token", DEFAULTS.host)
    .option("--port <n>", "port", String(DEFAULTS.port))
    .option("-m, --model <path|name>", "a .safetensors checkpoint, a diffusers folder, or a name diffuse models lists (default: the embedded tiny model)")
    .option("--config <dir>", "diffusers folder with config.json files for a single-file checkpoint of non-standard size")
    .option("--tokenizer <path>", "tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz (default for a single file: the store's, fetched once)")
    .option("--tokenizer-2 <path>", "SDXL: the second (OpenCLIP bigG) encoder's tokenizer, for a single file without --config (default: the store's)")
    .option("--accept-license", "accept the licence of a tokenizer the store fetches for a single-file model, without asking")
    .option("--refiner <path>", "a checkpoint requests may hand the end of the schedule over to (A1111's refiner_checkpoint; our refiner_switch_at)")
    .option("--refiner-config <dir>", "diffusers folder with config.json files for a single-file refiner of non-standard size")
    .option("--data <dir>", "job database and images", DEFAULTS.dataDir)
    .option("--token <secret>", "require Authorization: Bearer <secret> on every request (default: $DIFFUSE_TOKEN)")
    .option("--threads <n>", "CPU threads for generation (default: all cores)")
    .option("--body-limit <mib>", "largest request body in MiB", String(DEFAULTS.bodyLimit / 1024 / 1024))
    .option(
      "--work-budget <megapixel-steps>",
      "most work one generation request may ask for: width x height / 1e6 x steps x images (more gets 422)",
      String(DEFAULTS.workBudget),
    )
    .option("--log", "log every request (secrets in URLs are redacted)")
    .option("--safety-checker <path>", "a safety_checker folder (default: the model folder's own, if any)")
    .option("--safety-policy <policy>", "what to do with a flagged image: block (black), blur or flag", "block")
    .option("--no-safety-check", "do not run the safety checker (recorded in each image's metadata)")
    .option("--no-watermark", "do not embed the invisible watermarks (recorded in each image's metadata)")
    .option("--no-provenance", "do not attach C2PA content credentials (recorded in each image's metadata)")
    .option("--policy <rules.json>", "prompt policy: matching prompts are refused with 422 (default: $DIFFUSE_PROMPT_POLICY)")
    .option("--controlnet-dir <dir>", "a folder of ControlNets for A1111's ControlNet extension routes (/controlnet/model_list); repeatable", (v: string, all: string[]) => [...all, v], [])
    .action(async (o: ServeOptions) => {
      await serveCommand(o);
    });
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n)) throw new InputError(`${flag} ${JSON.stringify(value)} is not a whole number`);
  return n;
}

function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) throw new InputError(`${flag} ${JSON.stringify(value)} is not a positive number`);
  return n;
}

async function refinerOption(o: ServeOptions): Promise<{ model: string; config?: string } | undefined> {
  if (o.refinerConfig !== undefined && o.refiner === undefined) throw new InputError("--refiner-config needs --refiner: the single-file refiner it describes");
  return o.refiner === undefined ? undefined : { model: await modelOption(o.refiner), config: o.refinerConfig };
}

async function serveCommand(o: ServeOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const modelPath = o.model === undefined ? defaultModelPath() : await modelOption(o.model);
  if (isDefaultModel(modelPath)) log("serving the embedded tiny shapes model (a demo); pass --model path/to/sd-v1-5.safetensors for real Stable Diffusion");
  const config = resolveServerConfig({
    host: o.host,
    port: integer("--port", o.port),
    modelPath,
    dataDir: o.data,
    token: o.token ?? process.env["DIFFUSE_TOKEN"],
    bodyLimit: (integer("--body-limit", o.bodyLimit) ?? DEFAULTS.bodyLimit / 1024 / 1024) * 1024 * 1024,
    loadOptions: {
      config: o.config,
      tokenizer: o.tokenizer,
      tokenizer2: o.tokenizer2,
      threads: integer("--threads", o.threads),
      refiner: await refinerOption(o),
      // A single file's tokenizers come from the store; the worker thread cannot ask at the terminal, so the
      // licence is accepted here or beforehand (diffuse pull, --accept-license).
      acceptLicense: o.acceptLicense,
      onStatus: log,
      safetyChecker: o.safetyCheck ? o.safetyChecker : false,
      safetyPolicy: safetyPolicyOption(o.safetyPolicy),
      watermark: o.watermark,
      provenance: o.provenance ? signerConfigFromEnv() : false,
      promptPolicy: o.policy ?? (process.env.DIFFUSE_PROMPT_POLICY || undefined),
    },
    log: o.log ?? false,
    workBudget: positiveNumber("--work-budget", o.workBudget),
    controlnetDirs: o.controlnetDir,
  });
  const app = await buildApp(config);
  const { requeued, failed } = app.recovery;
  if (requeued.length) log(`the server had stopped abruptly: ${requeued.length} interrupted job(s) queued again`);
  if (failed.length) log(`${failed.length} job(s) interrupted twice were marked failed: ${failed.join(", ")}`);
  let address: string;
  try {
    address = await app.fastify.listen({ host: config.host, port: config.port });
  } catch (e) {
    await app.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new InputError(`port ${config.port} on ${config.host} is in use: stop the other server or pass --port`);
    if (code === "EADDRNOTAVAIL") throw new InputError(`${config.host} is not an address of this machine: pass --host 127.0.0.1 or one of its addresses`);
    throw e;
  }
  log(`diffuse serving ${address} (data: ${config.dataDir}${config.token ? ", token required" : ""})`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`${signal}: stopping; a running job goes back to the queue and resumes on the next start`);
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      void app.close().finally(resolve);
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  });
}
