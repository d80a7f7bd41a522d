import type { Command } from "commander";
import type { ListedModel } from "../index.js";
import { formatBytes } from "./transfer-meter.js";
import { collect } from "./repeatable.js";

interface ModelsCliOptions {
  modelsDir: string[];
  json?: boolean;
  hash: boolean;
  kind?: string;
}

export function registerModels(program: Command): void {
  program
    .command("models")
    .description(
      "list every model diffuse can use: pulled ones, the Hugging Face cache, and AUTOMATIC1111/Forge, ComfyUI and InvokeAI folders",
    )
    .option(
      "--models-dir <dir>",
      'another tool\'s installation or a folder of models (repeatable; also "modelsDirs" in $DIFFUSE_HOME/config.json)',
      collect,
      [],
    )
    .option(
      "--kind <kind>",
      "only models of this kind: checkpoint, lora, embedding, controlnet, vae, tokenizer, safety-checker",
    )
    .option("--no-hash", "skip the short hashes (each file is hashed once anyway, then remembered)")
    .option("--json", "print a JSON array on stdout")
    .action(async (o: ModelsCliOptions) => {
      const log = (s: string) => process.stderr.write(`${s}\n`);
      // Loaded here rather than at the CLI's start: the Hub client costs tens of ms to load.
      const { listModels } = await import("../index.js");
      const all = await listModels({ modelsDirs: o.modelsDir, hashes: o.hash, onStatus: log });
      const models = o.kind ? all.filter((m) => m.kind === o.kind) : all;
      if (o.json) {
        process.stdout.write(JSON.stringify(models) + "\n");
        return;
      }
      if (!models.length) {
        log(
          "no models found: diffuse pull --list shows what can be downloaded; --models-dir adds another tool's folders",
        );
        return;
      }
      process.stdout.write(table(models));
    });
}

function table(models: readonly ListedModel[]): string {
  const rows = [
    ["NAME", "KIND", "FAMILY", "SIZE", "HASH", "LICENCE", "WHERE"],
    ...models.map((m) => [
      m.name,
      m.kind,
      m.family,
      formatBytes(m.size),
      m.hash ?? "",
      m.license?.name ?? "unknown",
      `${m.source}: ${m.path}${m.problem ? `  (cannot be used: ${m.problem})` : ""}`,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}
