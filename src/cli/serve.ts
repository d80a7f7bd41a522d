import type { Command } from "commander";
import { DiffuseError, InputError, isDefaultModel, openCheckpoint } from "../index.js";
import { buildApp, parseQueueUrl, resolveServerConfig, SERVER_DEFAULTS as DEFAULTS } from "../server-api.js";
import {
  addModelOptions,
  GENERATION_FLAGS,
  integer,
  loadOptionsOf,
  modelPathOf,
  type ModelFlags,
} from "./model-options.js";
import { collect } from "./repeatable.js";

interface ServeOptions extends ModelFlags {
  host: string;
  port: string;
  data: string;
  token?: string;
  bodyLimit?: string;
  workBudget: string;
  maxMemory?: string;
  log?: boolean;
  policy?: string;
  queue?: string;
  controlnetDir: string[];
  modelsDir: string[];
  apiServerStop?: boolean;
}

export function registerServe(program: Command): void {
  const command = program
    .command("serve")
    .description(
      "web page with a sketch canvas, our HTTP API (/api/v1, /api/docs) and the AUTOMATIC1111 API (/sdapi/v1)",
    )
    .option("--host <address>", "address to listen on; anything but loopback needs --token", DEFAULTS.host)
    .option("--port <n>", "port", String(DEFAULTS.port));
  addModelOptions(command)
    .option(
      "--queue <redis-url>",
      "hand jobs to `diffuse worker` processes through BullMQ on Redis: redis://[user:password@]host[:port][/db] (password also from $DIFFUSE_REDIS_PASSWORD); default: the embedded queue, generating in this process",
    )
    .option("--data <dir>", "job database and images", DEFAULTS.dataDir)
    .option("--token <secret>", "require Authorization: Bearer <secret> on every request (default: $DIFFUSE_TOKEN)")
    .option("--body-limit <mib>", "largest request body in MiB", String(DEFAULTS.bodyLimit / 1024 / 1024))
    .option(
      "--work-budget <megapixel-steps>",
      "most work one generation request may ask for: width x height / 1e6 x steps x images (more gets 422)",
      String(DEFAULTS.workBudget),
    )
    .option(
      "--max-memory <GiB>",
      "refuse (422) a generation whose memory estimate is over this many GiB (default: what the machine has free)",
    )
    .option("--log", "log every request (secrets in URLs are redacted)")
    .option(
      "--policy <rules.json>",
      "prompt policy: matching prompts are refused with 422 (default: $DIFFUSE_PROMPT_POLICY)",
    )
    .option(
      "--models-dir <dir>",
      'another tool\'s installation or a folder of models whose checkpoints clients may switch to, as diffuse models lists them (repeatable; also "modelsDirs" in $DIFFUSE_HOME/config.json)',
      collect,
      [],
    )
    .option(
      "--controlnet-dir <dir>",
      "a folder of ControlNets for A1111's ControlNet extension routes (/controlnet/model_list); repeatable",
      collect,
      [],
    )
    .option(
      "--api-server-stop",
      "let clients stop the server with POST /sdapi/v1/server-stop or server-kill (AUTOMATIC1111's flag); off: 403",
    )
    .action(async (o: ServeOptions) => {
      await serveCommand(o, command);
    });
}

/** Opens the checkpoint as loading would, and closes it; a DiffuseError says why it cannot be served. */
function checkServable(modelPath: string, configDir: string | undefined): void {
  try {
    openCheckpoint(modelPath, { configDir }).close();
  } catch (e) {
    if (e instanceof DiffuseError) throw new InputError(`cannot serve ${modelPath}: ${e.message}`);
    throw e;
  }
}

function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new InputError(`${flag} ${JSON.stringify(value)} is not a positive number`);
  return n;
}

/** With a queue, generation happens on the workers: its flags belong on `diffuse worker`, and are refused here rather than ignored. */
function refuseGenerationFlags(command: Command): void {
  const given = GENERATION_FLAGS.filter((k) => command.getOptionValueSource(k) === "cli");
  if (given.length === 0) return;
  const flags = given.map(
    (k) =>
      `--${k === "safetyCheck" || k === "watermark" || k === "provenance" ? "no-" : ""}${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
  );
  throw new InputError(
    `${flags.join(", ")} ${flags.length === 1 ? "applies" : "apply"} to generation, which --queue hands to the workers: pass ${flags.length === 1 ? "it" : "them"} to diffuse worker instead`,
  );
}

async function serveCommand(o: ServeOptions, command: Command): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const queue = o.queue === undefined ? undefined : parseQueueUrl(o.queue);
  if (queue) refuseGenerationFlags(command);
  const modelPath = await modelPathOf(o);
  if (isDefaultModel(modelPath))
    log(
      "serving the embedded tiny shapes model (a demo); pass --model path/to/sd-v1-5.safetensors for real Stable Diffusion",
    );
  const loadOptions = await loadOptionsOf(o, log);
  const config = resolveServerConfig({
    host: o.host,
    port: integer("--port", o.port),
    modelPath,
    queue,
    dataDir: o.data,
    token: o.token ?? process.env["DIFFUSE_TOKEN"],
    bodyLimit: (integer("--body-limit", o.bodyLimit) ?? DEFAULTS.bodyLimit / 1024 / 1024) * 1024 * 1024,
    loadOptions: {
      ...loadOptions,
      promptPolicy: o.policy ?? (process.env.DIFFUSE_PROMPT_POLICY || undefined),
    },
    log: o.log ?? false,
    workBudget: positiveNumber("--work-budget", o.workBudget),
    ...(o.maxMemory !== undefined ? { maxMemory: positiveNumber("--max-memory", o.maxMemory) * 1024 ** 3 } : {}),
    controlnetDirs: o.controlnetDir,
    models: { modelsDirs: o.modelsDir },
    apiServerStop: o.apiServerStop ?? false,
  });
  // Generation runs here (no queue): a model that cannot be opened would give a server that looks healthy and fails
  // every request, so it is checked now (headers and shapes, not a full load) and refused with the reason; after the
  // flags, whose mistakes are cheaper to report.
  if (!queue) checkServable(modelPath, loadOptions.config);
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
    if (code === "EADDRINUSE")
      throw new InputError(`port ${config.port} on ${config.host} is in use: stop the other server or pass --port`);
    if (code === "EADDRNOTAVAIL")
      throw new InputError(
        `${config.host} is not an address of this machine: pass --host 127.0.0.1 or one of its addresses`,
      );
    throw e;
  }
  const where = queue ? `, jobs to the workers of ${queue.display}` : "";
  log(`diffuse serving ${address} (data: ${config.dataDir}${config.token ? ", token required" : ""}${where})`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(
        queue
          ? `${signal}: stopping; running jobs go on on their workers`
          : `${signal}: stopping; a running job goes back to the queue and resumes on the next start`,
      );
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      void app.close().finally(resolve);
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    void app.stopRequested.then((how) => stop(`POST /sdapi/v1/server-${how}`));
  });
  // bullmq's clients may keep timers for a Redis that is away; everything is saved and closed by now.
  if (queue) process.exit(0);
}
