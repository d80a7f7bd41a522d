import cliProgress from "cli-progress";
import type { Command } from "commander";
import { CATALOGUE, type FileProgress, InputError, type PullResult } from "../index.js";
import { signalExitCode } from "./interruption.js";
import { terminalLicensePrompt } from "./license-prompt.js";
import { formatBytes, TransferMeter } from "./transfer-meter.js";

interface PullCliOptions {
  list?: boolean;
  acceptLicense?: boolean;
  json?: boolean;
  progress: boolean;
}

export function registerPull(program: Command): void {
  program
    .command("pull")
    .description(
      "download a model from the Hugging Face Hub into its cache (shared with diffusers), after its licence is accepted",
    )
    .argument("[model]", "a catalogue name (see --list) or OWNER/REPO[@REVISION][:FILE]")
    .option("--list", "list the catalogue's short names")
    .option("--accept-license", "accept the model's licence without asking (recorded once per licence, with the date)")
    .option("--json", "print a JSON result on stdout")
    .option("--no-progress", "no progress bars")
    .addHelpText(
      "after",
      "\nEnvironment: HF_ENDPOINT (a mirror), HF_TOKEN (gated and private repositories), HF_HUB_OFFLINE=1 (cache only),\n" +
        "HF_HUB_CACHE / HF_HOME (where the files go), DIFFUSE_HOME (accepted licences).\n" +
        "An interrupted download resumes where it stopped when the same command runs again.",
    )
    .action(async (model: string | undefined, o: PullCliOptions) => {
      if (o.list) return await listCatalogue(o.json ?? false);
      if (!model)
        throw new InputError(
          "diffuse pull needs a model: a catalogue name (diffuse pull --list) or OWNER/REPO[@REVISION][:FILE]",
        );
      await pullCommand(model, o);
    });
}

// The Hub client is loaded when a command needs it, not at every start of the CLI (it adds tens of ms).
async function listCatalogue(json: boolean): Promise<void> {
  const [{ RepoCache }, { storeSettings }] = await Promise.all([
    import("../hub/hub-cache.js"),
    import("../hub/store-settings.js"),
  ]);
  const settings = storeSettings();
  const rows = CATALOGUE.map((e) => ({
    name: e.name,
    repo: e.repo,
    kind: e.kind,
    family: e.family,
    license: e.license.licenseName ?? e.license.license ?? "",
    downloaded: new RepoCache(settings.cacheDir, e.repo).snapshotOf(e.revision ?? "main") !== undefined,
    description: e.description,
  }));
  if (json) {
    process.stdout.write(JSON.stringify(rows) + "\n");
    return;
  }
  const table = [
    ["NAME", "KIND", "FAMILY", "LICENCE", "", "WHAT"],
    ...rows.map((r) => [r.name, r.kind, r.family, r.license, r.downloaded ? "downloaded" : "", r.description]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table)
    process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n");
}

async function pullCommand(spec: string, o: PullCliOptions): Promise<void> {
  const { pull } = await import("../index.js");
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const controller = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    stoppedBy = signal;
    controller.abort();
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);
  const bars = o.progress && !o.json && process.stderr.isTTY ? new ProgressBars() : undefined;
  const meters = new Map<string, TransferMeter>();
  let result: PullResult;
  try {
    result = await pull(spec, {
      acceptLicense: o.acceptLicense,
      confirmLicense: terminalLicensePrompt(),
      signal: controller.signal,
      onStatus: log,
      onProgress: (p: FileProgress) => {
        let meter = meters.get(p.file);
        if (!meter) meters.set(p.file, (meter = new TransferMeter(p.resumedFrom)));
        meter.update(p.bytes);
        bars?.update(p, meter);
        if (p.bytes === p.total && !bars) log(`${p.file}: ${meter.summary(p.total)}`);
      },
    });
  } catch (e) {
    if (stoppedBy) {
      bars?.stop();
      log(
        `interrupted by ${stoppedBy}: the partial download is kept in the Hugging Face cache; run the same command to resume it`,
      );
      process.exitCode = signalExitCode(stoppedBy);
      return;
    }
    throw e;
  } finally {
    bars?.stop();
    for (const s of signals) process.off(s, onSignal);
  }
  if (o.json) {
    process.stdout.write(
      JSON.stringify({
        ...result,
        license: result.license && { id: result.license.id, name: result.license.name, url: result.license.url },
      }) + "\n",
    );
    return;
  }
  if (!result.downloaded.length) log(`${spec}: already in the Hugging Face cache`);
  else
    log(
      `${spec}: ${result.downloaded.length} file(s), ${formatBytes(result.received)} downloaded${result.license ? `; licence: ${result.license.name}` : ""}`,
    );
  process.stdout.write(`${result.path}\n`);
}

/** One bar per file: bytes, speed and time left. */
class ProgressBars {
  private readonly multi = new cliProgress.MultiBar(
    {
      format: " {file} |{bar}| {done}/{size}  {speed}  {left} left",
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  private readonly bars = new Map<string, cliProgress.SingleBar>();

  update(p: FileProgress, meter: TransferMeter): void {
    const payload = {
      file: p.file,
      done: formatBytes(p.bytes),
      size: formatBytes(p.total),
      speed: meter.speed(),
      left: meter.eta(p.total),
    };
    let bar = this.bars.get(p.file);
    if (!bar) this.bars.set(p.file, (bar = this.multi.create(p.total, p.bytes, payload)));
    bar.update(p.bytes, payload);
  }

  stop(): void {
    this.multi.stop();
  }
}
