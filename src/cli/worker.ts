import type { Command } from "commander";
import { InputError } from "../index.js";
import { DEFAULT_LOCK_DURATION_MS, DEFAULT_STALLED_INTERVAL_MS, parseQueueUrl, QueueWorker } from "../server-api.js";
import { CLOSE_WAIT_MS, within } from "../worker/close-bullmq.js";
import { signalExitCode } from "./interruption.js";
import { addModelOptions, integer, loadOptionsOf, modelPathOf, type ModelFlags } from "./model-options.js";
import { collect } from "./repeatable.js";

interface WorkerOptions extends ModelFlags {
  queue: string;
  name?: string;
  lockDuration: string;
  stalledInterval: string;
  modelsDir: string[];
}

export function registerWorker(program: Command): void {
  const command = program
    .command("worker")
    .description(
      "take jobs from the queue of a `diffuse serve --queue` server (BullMQ on Redis) and generate them; run one per machine, as many as you like",
    );
  addModelOptions(command)
    .requiredOption(
      "--queue <redis-url>",
      "the server's queue: redis://[user:password@]host[:port][/db] (password also from $DIFFUSE_REDIS_PASSWORD)",
    )
    .option("--name <name>", "this worker's name in the adverts and on the jobs it runs (default: host-pid-random)")
    .option(
      "--models-dir <dir>",
      "an A1111 or ComfyUI installation whose upscaler models a job's hires fix may name, as the server's --models-dir (repeatable; the server accepts the names its own folders list, so give both the same files)",
      collect,
      [] as string[],
    )
    .option(
      "--lock-duration <ms>",
      "how long a job stays locked to this worker between renewals; a killed worker's job is retried once it expires",
      String(DEFAULT_LOCK_DURATION_MS),
    )
    .option(
      "--stalled-interval <ms>",
      "how often to look for jobs whose worker died",
      String(DEFAULT_STALLED_INTERVAL_MS),
    )
    .action(async (o: WorkerOptions) => {
      await workerCommand(o);
    });
}

function milliseconds(flag: string, value: string): number {
  const n = integer(flag, value)!;
  if (n < 100)
    throw new InputError(
      `${flag} ${value} is too short: use at least 100 ms (bullmq renews a lock at half its duration)`,
    );
  return n;
}

async function workerCommand(o: WorkerOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const target = parseQueueUrl(o.queue);
  const worker = new QueueWorker({
    target,
    modelPath: await modelPathOf(o),
    loadOptions: { ...(await loadOptionsOf(o, log)), upscalerSearch: { modelsDirs: o.modelsDir } },
    name: o.name,
    lockDurationMs: milliseconds("--lock-duration", o.lockDuration),
    stalledIntervalMs: milliseconds("--stalled-interval", o.stalledInterval),
    log: (line) => log(`worker: ${line}`),
  });
  const stopped = new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        // The second: now, whatever the first is waiting for (a long job, a Redis that is away). The running job is
        // cancelled within a step; its lock expires and another worker (or this one, restarted) runs it; the advert
        // expires by itself. A third does not even wait for that step.
        const code = signalExitCode(signal);
        if (signals > 2) process.exit(code);
        log(`${signal}: stopping now; the running job goes back to the queue when its lock expires`);
        void within(worker.abandon(), CLOSE_WAIT_MS).finally(() => process.exit(code));
        return;
      }
      // The first: finish the running job and deliver it (close waits for Redis only a short while).
      log(`${signal}: stopping after the running job (again to stop now)`);
      void worker.close().finally(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  // A signal may come before the start is over (Redis away, a model still loading): it stops the worker then too.
  const started = await Promise.race([worker.start(), stopped.then(() => undefined)]);
  if (started) {
    if (started.loadError !== undefined)
      log(
        `worker ${worker.name}: the model could not be loaded (${started.loadError}); its jobs fail with that reason until this worker is restarted`,
      );
    log(`diffuse worker ${worker.name} ready: model ${worker.modelName}, queue ${target.display}`);
    await stopped;
  }
  // bullmq's clients may keep timers for a Redis that is away; the worker has delivered or left its job by now.
  process.exit(0);
}
